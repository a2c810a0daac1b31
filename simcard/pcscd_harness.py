"""A real pcscd with vpcd readers, for tests, the benchmark and ``pkcard-sim``.

There is one pcscd per machine (socket ``/run/pcscd/pcscd.comm``). Whoever
starts one must hold :class:`PcscdLock` for as long as it runs; only then may
stray pcscd processes be killed. The harness writes one vpcd config per
virtual reader, runs ``pcscd -f -c DIR`` as a child process and serves
cards into the vpcd slots with :class:`pkcard.simcard.vpcd.VpcdCardSlot`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from pkcard.simcard.vpcd import CardLike, VpcdCardSlot

# A fixed, well-known path is the point: every test run on the machine meets here.
LOCK_PATH = Path("/tmp/pkcard-pcscd.lock")  # noqa: S108
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
PCSCD_RUN_DIR = Path("/run/pcscd")
SLOTS_PER_READER = 2  # vpcd gives every configured reader two slots
_POLL_S = 0.02
_READY_TIMEOUT_S = 15.0
_CARD_TIMEOUT_S = 5.0
_STOP_TIMEOUT_S = 5.0


class HarnessError(Exception):
    """pcscd or vpcd is missing, did not start, or did not show what was expected."""


@dataclass(frozen=True)
class VirtualReader:
    """One vpcd reader: its name in PC/SC and its TCP port (CHANNELID)."""

    friendly_name: str
    channel_id: int

    def slot_name(self, index: int) -> str:
        """The PC/SC name of slot ``index`` (0 or 1)."""
        return f"{self.friendly_name} 00 {index:02d}"

    def config(self, driver: Path = VPCD_DRIVER) -> str:
        return (
            f'FRIENDLYNAME "{self.friendly_name}"\n'
            f"DEVICENAME   /dev/null:0x{self.channel_id:04X}\n"
            f"LIBPATH      {driver}\n"
            f"CHANNELID    0x{self.channel_id:04X}\n"
        )


DEFAULT_READERS: tuple[VirtualReader, ...] = (
    VirtualReader("Gemalto PC Twin Reader", 0x8C7B),  # IDBridge CT30 by name
    VirtualReader("Gemalto GemPC Pinpad", 0x8C7D),  # IDBridge CT700 by name
    VirtualReader("Virtual PCD", 0x8C7F),  # a generic reader
)


def missing_components() -> list[str]:
    """What this machine lacks to run the harness (empty when all is there)."""
    missing = []
    if shutil.which("pcscd") is None:
        missing.append("pcscd (apt-get install pcscd)")
    if not VPCD_DRIVER.exists():
        missing.append(f"{VPCD_DRIVER} (apt-get install vsmartcard-vpcd)")
    if os.geteuid() != 0:
        missing.append("root (pcscd must create /run/pcscd)")
    return missing


def write_vpcd_configs(
    directory: Path, readers: Sequence[VirtualReader], driver_dir: Path | None = None
) -> None:
    """Write one pcscd reader config per virtual reader into ``directory``.

    vpcd keeps its connections in globals indexed by slot only, so two
    readers served by one loaded copy of the driver share (and fight over)
    the same two sockets. Each reader after the first therefore gets its own
    copy of ``libifdvpcd.so`` in ``driver_dir`` (default: ``directory``):
    a distinct file is a distinct ``dlopen`` with its own globals.
    """
    directory.mkdir(parents=True, exist_ok=True)
    copies = driver_dir if driver_dir is not None else directory
    copies.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("vpcd-*.conf"):
        old.unlink()
    for number, reader in enumerate(readers):
        driver = VPCD_DRIVER
        if number > 0:
            driver = copies / f"libifdvpcd-{number}.so"
            if not driver.exists():
                shutil.copyfile(VPCD_DRIVER, driver)
        (directory / f"vpcd-{number}.conf").write_text(reader.config(driver), encoding="utf-8")


class PcscdLock:
    """The machine-wide lock every pcscd-starting process holds (blocking flock)."""

    def __init__(self, path: Path = LOCK_PATH) -> None:
        self._path = path
        self._file: IO[bytes] | None = None

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock; without ``blocking``, return False when another holds it."""
        handle = self._path.open("ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        return True

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> PcscdLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def pcscd_pids() -> list[int]:
    """Process ids of every running pcscd on this machine."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text(encoding="utf-8").strip()
        except OSError:
            continue
        if comm == "pcscd":
            pids.append(int(entry.name))
    return pids


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        try:
            status = (Path(f"/proc/{pid}") / "stat").read_text(encoding="utf-8")
        except OSError:
            return True
        if status.split(") ", 1)[-1].startswith("Z"):
            return True  # a zombie of another parent: it no longer serves
        time.sleep(_POLL_S)
    return False


def kill_stray_pcscd(lock: PcscdLock) -> list[int]:
    """Stop every pcscd (TERM, then KILL). Only call while holding ``lock``."""
    del lock  # the parameter documents and enforces the precondition
    killed = []
    for pid in pcscd_pids():
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        if not _wait_gone(pid, _STOP_TIMEOUT_S):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, _STOP_TIMEOUT_S)
        killed.append(pid)
    for stale in ("pcscd.comm", "pcscd.pid"):
        (PCSCD_RUN_DIR / stale).unlink(missing_ok=True)
    return killed


@dataclass(frozen=True)
class HarnessSlot:
    """One slot of the harness: the reader it shows up as and its vpcd port."""

    index: int
    reader_name: str
    port: int


class PcscdHarness:
    """pcscd + vpcd readers + card slots. Requires the caller to hold :class:`PcscdLock`.

    Slots are numbered first slot of every reader first (0 = first reader's
    slot 0, 1 = second reader's slot 0, ...), then the readers' second slots.
    """

    def __init__(
        self, workdir: Path, lock: PcscdLock, readers: Sequence[VirtualReader] = DEFAULT_READERS
    ) -> None:
        self._workdir = workdir
        self._lock = lock
        self._readers = tuple(readers)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._generation = 0
        self.pcscd_extra_args: tuple[str, ...] = ()
        self._slots: dict[int, VpcdCardSlot] = {}
        self.slots: tuple[HarnessSlot, ...] = ()

    @property
    def readers(self) -> tuple[VirtualReader, ...]:
        return self._readers

    @property
    def reader_names(self) -> tuple[str, ...]:
        """The PC/SC reader name of every slot, by slot index."""
        return tuple(slot.reader_name for slot in self.slots)

    @property
    def running(self) -> bool:
        """Whether the harness's pcscd process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        return self._workdir / f"pcscd-{self._generation}.log"

    def reader_name(self, slot: int) -> str:
        return self.slots[slot].reader_name

    def start(self) -> None:
        missing = missing_components()
        if missing:
            raise HarnessError("missing: " + ", ".join(missing))
        kill_stray_pcscd(self._lock)
        self._start_process()

    def stop(self) -> None:
        """Pull every card and stop pcscd. Idempotent."""
        self.remove_all()
        self._stop_process()

    def restart_pcscd(
        self, readers: Sequence[VirtualReader] | None = None, reinsert: bool = True
    ) -> None:
        """Stop and start pcscd, optionally with other readers (hot-plug by restart).

        With ``reinsert`` the cards that were in slots that still exist go back in,
        power-cycled as a real pcscd restart would leave them.
        """
        inserted = {
            index: slot.card
            for index, slot in self._slots.items()
            if slot.inserted and slot.card is not None
        }
        self.remove_all(wait=True)
        self._stop_process()
        if readers is not None:
            self._readers = tuple(readers)
        self._start_process()
        if reinsert:
            for index, card in inserted.items():
                if index < len(self.slots):
                    card.power_off()
                    self.insert(index, card)

    def insert(self, slot: int, card: CardLike, wait: bool = True) -> None:
        """Insert ``card`` into ``slot``; with ``wait``, until pcscd shows it present.

        Waiting means a new card event in pcscd, so a card pulled just before
        (and not yet noticed by pcscd's 400 ms presence poll) is never mistaken
        for this one.
        """
        before = self._card_state(slot)[1]
        self._slot(slot).insert(card)
        if wait:
            self._wait(slot, lambda present, events: present and events != before, "present")

    def remove(self, slot: int, wait: bool = True) -> None:
        """Pull the card from ``slot``; with ``wait``, until pcscd shows it absent."""
        self._slot(slot).remove()
        if wait:
            self.wait_for_card(slot, present=False)

    def pull_on_next_apdu(self, slot: int) -> None:
        """The next command APDU to ``slot`` finds the card pulled mid-command."""
        self._slot(slot).pull_on_next_apdu()

    def remove_all(self, wait: bool = False) -> None:
        """Pull every card; with ``wait``, until pcscd shows every slot empty."""
        pulled = [index for index, slot in self._slots.items() if slot.inserted]
        for slot in self._slots.values():
            slot.remove()
        if wait and self.running:
            for index in pulled:
                self.wait_for_card(index, present=False)

    def card_present(self, slot: int) -> bool:
        """Whether pcscd shows a card in ``slot`` now."""
        return self._card_state(slot)[0]

    def wait_for_card(self, slot: int, present: bool, timeout: float = _CARD_TIMEOUT_S) -> None:
        """Wait until pcscd shows ``slot`` with (or without) a card."""
        self._wait(slot, lambda now, _events: now == present, "present" if present else "absent")

    def _wait(self, slot: int, done: Callable[[bool, int], bool], what: str) -> None:
        deadline = time.monotonic() + _CARD_TIMEOUT_S
        while not done(*self._card_state(slot)):
            if time.monotonic() > deadline:
                raise HarnessError(f"slot {slot} not {what} after {_CARD_TIMEOUT_S} s")
            time.sleep(_POLL_S)

    def _card_state(self, slot: int) -> tuple[bool, int]:
        """(card present, pcscd's card event count) for ``slot``."""
        from pkcard.pcsc_bridge.context import establish_context, release_context  # noqa: PLC0415
        from pkcard.pcsc_bridge.watcher import read_states  # noqa: PLC0415

        name = self.reader_name(slot)
        handle = establish_context()
        try:
            _status, states = read_states(handle, [name])
        finally:
            release_context(handle)
        state = states.get(name)
        if state is None:
            return False, -1
        return state.card_present, state.card_events

    def _slot(self, index: int) -> VpcdCardSlot:
        if not 0 <= index < len(self.slots):
            raise HarnessError(f"no slot {index}; there are {len(self.slots)}")
        return self._slots[index]

    def _layout(self) -> None:
        slots: list[HarnessSlot] = []
        for half in range(SLOTS_PER_READER):
            for reader in self._readers:
                slots.append(
                    HarnessSlot(len(slots), reader.slot_name(half), reader.channel_id + half)
                )
        self.slots = tuple(slots)
        self._slots = {slot.index: VpcdCardSlot(slot.port) for slot in slots}

    def _start_process(self) -> None:
        self._generation += 1
        config_dir = self._workdir / f"reader.conf.d-{self._generation}"
        write_vpcd_configs(config_dir, self._readers, self._workdir / "drivers")
        self._layout()
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            ["pcscd", "-f", *self.pcscd_extra_args, "-c", str(config_dir)],  # noqa: S607 - pcscd from PATH
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        from pkcard.errors import TransportError  # noqa: PLC0415
        from pkcard.pcsc_bridge import PcscReaderSystem  # noqa: PLC0415 - only the real path needs it

        expected = set(self.reader_names)
        deadline = time.monotonic() + _READY_TIMEOUT_S
        seen: set[str] = set()
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise HarnessError(f"pcscd exited early; see {self.log_path}")
            try:
                with PcscReaderSystem() as system:
                    seen = {state.reader.name for state in system.list_readers()}
            except TransportError:
                seen = set()
            if expected <= seen:
                return
            time.sleep(_POLL_S)
        raise HarnessError(
            f"pcscd showed {sorted(seen)}, expected {sorted(expected)}; see {self.log_path}"
        )

    def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(_STOP_TIMEOUT_S)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> PcscdHarness:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
