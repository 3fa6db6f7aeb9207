"""Where a search's study lives: Optuna's RDB storage opened from a URL, the study's settings, and the
trials that processes killed on this machine left RUNNING.

The study sits in a database so that a search survives a kill and can be shared: by default an SQLite
file in the search folder, or any URL Optuna's RDBStorage accepts (PostgreSQL for workers on several
machines). With a heartbeat, a trial whose worker died on another machine is marked FAIL once its
heartbeat is older than the grace period; on this machine a dead process is noticed at once by its pid.
"""

import logging
import os
import socket
import warnings

import optuna
from optuna.trial import TrialState

from microkws._config import changed_keys
from microkws.errors import UserError, first_line

log = logging.getLogger(__name__)

STUDY_NAME = "microkws"
"""The one study of a search's storage (another search needs another database or search folder)."""
STUDY_FILE = "study.db"
"""The default storage: an SQLite file in the search folder."""
SETTINGS_ATTR = "settings"
"""The study user attribute holding the search's settings, compared on every re-run."""

HEARTBEAT_SECONDS = 60
"""How often a running trial records that its worker is alive."""
GRACE_SECONDS = 300
"""A RUNNING trial without a heartbeat for this long belongs to a dead worker and is marked FAIL."""
SQLITE_LOCK_SECONDS = 60
"""How long an SQLite write waits for another worker's: parallel workers share one file."""

COUNTED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
"""Trials counted against --trials: the finished ones and those running now (so that parallel workers
stop together instead of each starting one more)."""


def default_storage_url(search_dir):
    return f"sqlite:///{os.path.abspath(os.path.join(search_dir, STUDY_FILE))}"


def shown_url(url):
    """`url` with its password hidden, for messages."""
    import sqlalchemy

    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return url


def open_storage(url):
    """Optuna's RDBStorage at `url`, or a one-line UserError naming the URL (unreachable server, missing
    driver, unparseable URL, a folder that does not exist)."""
    import sqlalchemy

    engine_kwargs = {"connect_args": {"timeout": SQLITE_LOCK_SECONDS}} if url.startswith("sqlite") else {}
    try:
        with warnings.catch_warnings():
            # The heartbeat is marked experimental; it is what fails trials of workers on dead machines.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_SECONDS,
                                              grace_period=GRACE_SECONDS)
    # ImportError: no driver for the URL's database (e.g. psycopg2 for postgresql://); RuntimeError: a
    # database made by an incompatible Optuna version.
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError, ImportError, RuntimeError,
            ValueError) as error:
        raise UserError(f"--storage {shown_url(url)}: cannot open the study database ({first_line(error)}); "
                        "check the URL, that the server is up and that its driver is installed") from None


def open_study(url, *, sampler=None, pruner=None):
    """The search's study in the storage at `url`, created on first use (maximising the score)."""
    return optuna.create_study(storage=open_storage(url), study_name=STUDY_NAME, load_if_exists=True,
                               direction="maximize", sampler=sampler, pruner=pruner)


def check_settings(study, settings, *, where):
    """A UserError if the study was started with settings other than `settings` (a JSON-able dict);
    `where` names the search (its folder or storage) in the message."""
    saved = study.user_attrs.get(SETTINGS_ATTR)
    if saved is None or saved == settings:
        return
    changed = changed_keys(saved, settings)
    raise UserError(f"{where} holds a search with other settings ({', '.join(changed)}); re-run with the same "
                    "flags to resume it, or pass a new --search_dir (or --storage)")


def save_settings(study, settings):
    """Pin `settings` to the study on its first run (later runs are compared by check_settings)."""
    if SETTINGS_ATTR not in study.user_attrs:
        study.set_user_attr(SETTINGS_ATTR, settings)


def fail_dead_trials(study):
    """Mark FAIL the RUNNING trials whose worker is gone: those of this machine whose process no longer
    exists (a `kill -9`, a crash, a power cut), and, through Optuna's heartbeat, those of any machine
    silent for GRACE_SECONDS. Returns the failed trials' numbers."""
    host = socket.gethostname()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid")
        if trial.user_attrs.get("host") == host and isinstance(pid, int) and not _alive(pid):
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            log.warning("trial %d was left running by process %d, which is gone: marked failed", trial.number, pid)
            failed.append(trial.number)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    return failed


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process by that number: alive, not ours to judge
        return True
    return True


def counted_trials(study):
    """How many trials count against --trials (COUNTED_STATES)."""
    return len(study.get_trials(deepcopy=False, states=COUNTED_STATES))
