import sys

from microkws.cli import main

sys.exit(main())
