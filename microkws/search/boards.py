"""Board presets: a microcontroller's flash, RAM and speed, turned into the budget a keyword model must fit.

A board's budget is a share of what the chip has, because the model is not alone on it: the firmware,
the audio frontend, the recognition and the user's own application need flash, RAM and time too.

    flash  = flash_bytes * model_flash_share      (the model's flatbuffer)
    arena  = ram_bytes * arena_share              (TFLM's tensor arena)
    MACs   = clock_hz * stride_s * compute_share / cycles_per_mac

The MACs line says: one inference must finish inside one feature stride (a new 20 ms slice of audio
arrives every stride), leaving the rest of the stride to the frontend and the application.
`cycles_per_mac` is an ESTIMATE per core, not a measurement on the board: CMSIS-NN's SIMD kernels
(Cortex-M4/M7) do two 8-bit multiply-accumulates per SMLAD instruction, ESP-NN uses the ESP32-S3's
128-bit vector unit, and a Cortex-M0+ has no SIMD at all. Loads, requantisation and the layers that
are not convolutions all cost extra, so real figures vary by model; measure yours on the board.
"""

from dataclasses import dataclass

from microkws.device import Targets
from microkws.errors import UserError

KiB = 1024
MiB = 1024 * 1024


@dataclass(frozen=True)
class Board:
    """A microcontroller board and the share of it a keyword model may take."""

    name: str
    """The preset's name (microkws search --board NAME)."""
    description: str
    """The board and its chip, for people."""
    flash_bytes: int
    """Flash on the board (or module)."""
    ram_bytes: int
    """On-chip SRAM."""
    core: str
    """The processor core."""
    clock_mhz: float
    """Core clock."""
    cycles_per_mac: float
    """ESTIMATED core cycles per int8 multiply-accumulate with the core's optimised TFLM kernels."""
    model_flash_share: float = 0.5
    """Share of flash the model's flatbuffer may take; the rest is the firmware's and the application's."""
    arena_share: float = 0.5
    """Share of RAM the tensor arena may take; the rest is the stack, audio buffers and the application's."""
    compute_share: float = 0.5
    """Share of each feature stride one inference may take; the rest is the frontend's and the application's."""

    def __post_init__(self):
        for name in ("model_flash_share", "arena_share", "compute_share"):
            if not 0 < getattr(self, name) <= 1:
                raise UserError(f"board {self.name}: {name} must be above 0 and at most 1, got {getattr(self, name)}")
        if min(self.flash_bytes, self.ram_bytes, self.clock_mhz, self.cycles_per_mac) <= 0:
            raise UserError(f"board {self.name}: flash, RAM, clock and cycles per MAC must be positive")

    def targets(self, stride_ms=20):
        """The budget (device.Targets) of this board for features computed every `stride_ms` ms."""
        macs = self.clock_mhz * 1e6 * (stride_ms / 1000) * self.compute_share / self.cycles_per_mac
        return Targets(flash_bytes=int(self.flash_bytes * self.model_flash_share),
                       arena_bytes=int(self.ram_bytes * self.arena_share),
                       macs=round(macs))


BOARDS = {board.name: board for board in (
    # Not a board but TFLM's micro_speech example (on the Nano 33 BLE Sense's Cortex-M4F): the model slot
    # and arena it reserves are the model's alone, and its 2 M MACs (microkws verify's default) take 15/16 of
    # the stride at the Cortex-M4 estimate. targets() gives exactly device.Targets()'s defaults.
    Board("micro_speech", "TFLM micro_speech example's budget (microkws verify's default)",
          flash_bytes=20 * KiB, ram_bytes=28 * KiB, core="Cortex-M4F", clock_mhz=64, cycles_per_mac=0.6,
          model_flash_share=1.0, arena_share=1.0, compute_share=0.9375),
    Board("nano33ble", "Arduino Nano 33 BLE Sense (nRF52840)",
          flash_bytes=1 * MiB, ram_bytes=256 * KiB, core="Cortex-M4F", clock_mhz=64, cycles_per_mac=0.6),
    Board("sparkfun_edge", "SparkFun Edge (Ambiq Apollo3 Blue)",
          flash_bytes=1 * MiB, ram_bytes=384 * KiB, core="Cortex-M4F", clock_mhz=48, cycles_per_mac=0.6),
    Board("esp32s3", "ESP32-S3 module (8 MB flash) with ESP-NN",
          flash_bytes=8 * MiB, ram_bytes=512 * KiB, core="Xtensa LX7", clock_mhz=240, cycles_per_mac=0.2),
    Board("pico", "Raspberry Pi Pico (RP2040)",
          flash_bytes=2 * MiB, ram_bytes=264 * KiB, core="Cortex-M0+", clock_mhz=133, cycles_per_mac=4.0),
    Board("stm32f746", "STM32F746G Discovery",
          flash_bytes=1 * MiB, ram_bytes=320 * KiB, core="Cortex-M7", clock_mhz=216, cycles_per_mac=0.35),
)}
"""Preset name -> Board. cycles_per_mac are estimates: Cortex-M4 with CMSIS-NN ~0.6, Cortex-M7 ~0.35 (dual
issue), ESP32-S3 with ESP-NN ~0.2, Cortex-M0+ without SIMD ~4."""


def board_named(name):
    """The Board preset called `name`, or a UserError listing the known ones."""
    try:
        return BOARDS[name]
    except KeyError:
        raise UserError(f"--board {name}: unknown board; choose one of {', '.join(BOARDS)} "
                        "(or give --flash_budget, --arena_budget and --macs_budget)") from None
