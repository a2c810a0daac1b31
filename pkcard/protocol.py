"""The protocol layer: a stack of APDU processors over one :class:`SmartCardConnection`.

Each processor handles one ISO 7816-4 transmission rule and passes the rest
down to the processor below it::

    ChainingProcessor      command data > 255 bytes -> CLA|10 chunks
      WrongLeProcessor     6Cxx -> resend once with Le = xx
        GetResponseProcessor   61xx -> GET RESPONSE until done (bounded)
          TransmitProcessor      encode, connection.transmit, parse

:class:`SmartCardProtocol` builds that stack; pass ``processors`` (a list of
layer factories, outermost first, each called with the layer below it) to
swap, drop or add layers. Nothing here logs: APDU bodies may carry PINs, and
recording is the job of :class:`pkcard.transcript.RecordingConnection`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence

from pkcard.apdu import SHORT_MAX_DATA, CommandApdu, ResponseApdu
from pkcard.errors import ProtocolError
from pkcard.sw import SW_OK, error_for_sw
from pkcard.transport import SmartCardConnection

INS_GET_RESPONSE = 0xC0
INS_SELECT = 0xA4
CLA_CHAINING = 0x10


class ApduProcessor(abc.ABC):
    """Turns one command into its final response, possibly with several exchanges."""

    __slots__ = ()

    @abc.abstractmethod
    def process(self, command: CommandApdu) -> ResponseApdu:
        """Send ``command`` and return the final response. Never raises on a status word."""


ProcessorFactory = Callable[[ApduProcessor], ApduProcessor]
"""Builds a layer over the processor below it (a processor class, or a ``functools.partial``)."""


class TransmitProcessor(ApduProcessor):
    """The bottom of every stack: one command, one exchange on the connection."""

    __slots__ = ("_transmit",)

    def __init__(self, connection: SmartCardConnection) -> None:
        self._transmit = connection.transmit

    def process(self, command: CommandApdu) -> ResponseApdu:
        return ResponseApdu.from_wire(self._transmit(command.wire))


def get_response_cla(cla: int) -> int:
    """The CLA of GET RESPONSE for a command with ``cla``: its logical channel, nothing else."""
    if cla & 0xE0 == 0x00:  # first interindustry class: channel in b2..b1
        return cla & 0x03
    if cla & 0xC0 == 0x40:  # further interindustry class: channel in b4..b1
        return cla & 0x4F
    return 0x00


class GetResponseProcessor(ApduProcessor):
    """Follows 61xx with GET RESPONSE (``xx`` = 00 means 256), bounded in count and size.

    The final status word is the last one the card sent. More than
    ``max_iterations`` GET RESPONSE commands, or more than ``max_total`` bytes
    of response data, is a :class:`ProtocolError`. A 6Cxx answer to GET
    RESPONSE is followed once with Le = xx.
    """

    __slots__ = ("_inner", "_max_iterations", "_max_total")

    def __init__(
        self, inner: ApduProcessor, max_iterations: int = 64, max_total: int = 65536
    ) -> None:
        if max_iterations < 1 or max_total < 1:
            raise ValueError("max_iterations and max_total must be positive")
        self._inner = inner
        self._max_iterations = max_iterations
        self._max_total = max_total

    def process(self, command: CommandApdu) -> ResponseApdu:
        return self.follow(command, self._inner.process(command))

    def follow(self, command: CommandApdu, response: ResponseApdu) -> ResponseApdu:
        """The final response to ``command``, whose first answer was ``response``."""
        sw = response.sw
        if sw >> 8 != 0x61:
            return response
        parts = [response.data]
        total = len(response.data)
        cla = get_response_cla(command.cla)
        wrong_le_followed = False
        for _ in range(self._max_iterations):
            response = self._inner.process(
                CommandApdu(cla, INS_GET_RESPONSE, 0x00, 0x00, le=(sw & 0xFF) or 256)
            )
            sw = response.sw
            if sw >> 8 == 0x6C and not wrong_le_followed:
                wrong_le_followed = True
                continue
            total += len(response.data)
            if total > self._max_total:
                raise ProtocolError(f"response data exceeds {self._max_total} bytes")
            parts.append(response.data)
            if sw >> 8 != 0x61:
                return ResponseApdu(b"".join(parts), sw)
        raise ProtocolError(f"card still had more data after {self._max_iterations} GET RESPONSE")


class WrongLeProcessor(ApduProcessor):
    """Resends a command answered 6Cxx once with Le = xx; a second 6Cxx is a ProtocolError.

    A 6Cxx to a command without Le (case 1 or 3: VERIFY, CHANGE REFERENCE
    DATA) is a ProtocolError too: resending it would present a PIN twice.
    """

    __slots__ = ("_inner",)

    def __init__(self, inner: ApduProcessor) -> None:
        self._inner = inner

    def process(self, command: CommandApdu) -> ResponseApdu:
        return self.follow(command, self._inner.process(command))

    def follow(self, command: CommandApdu, response: ResponseApdu) -> ResponseApdu:
        """The final response to ``command``, whose first answer was ``response``."""
        if response.sw >> 8 != 0x6C:
            return response
        if command.le is None:
            raise ProtocolError(f"card answered {response.sw:04X} to a command without Le")
        resent = CommandApdu(
            command.cla,
            command.ins,
            command.p1,
            command.p2,
            command.data,
            (response.sw & 0xFF) or 256,
        )
        response = self._inner.process(resent)
        if response.sw >> 8 == 0x6C:
            raise ProtocolError(
                f"card answered {response.sw:04X} again after resending with its Le"
            )
        return response


class ChainingProcessor(ApduProcessor):
    """Splits command data longer than ``chunk`` bytes into a CLA|10 command chain.

    Every link but the last carries no Le and must be answered 9000 with no
    data; any other status word raises :func:`pkcard.sw.error_for_sw`.
    """

    __slots__ = ("_chunk", "_inner")

    def __init__(self, inner: ApduProcessor, chunk: int = SHORT_MAX_DATA) -> None:
        if not 1 <= chunk <= SHORT_MAX_DATA:
            raise ValueError(f"chunk must be 1..{SHORT_MAX_DATA}")
        self._inner = inner
        self._chunk = chunk

    def process(self, command: CommandApdu) -> ResponseApdu:
        data = command.data
        chunk = self._chunk
        if len(data) <= chunk:
            return self._inner.process(command)
        cla, ins, p1, p2 = command.cla, command.ins, command.p1, command.p2
        last = len(data) - ((len(data) - 1) % chunk + 1)
        for offset in range(0, last, chunk):
            response = self._inner.process(
                CommandApdu(cla | CLA_CHAINING, ins, p1, p2, data[offset : offset + chunk])
            )
            if response.sw != SW_OK:
                raise error_for_sw(response.sw)
            if response.data:
                raise ProtocolError("card answered a link of a command chain with data")
        return self._inner.process(CommandApdu(cla, ins, p1, p2, data[last:], command.le))


DEFAULT_PROCESSORS: tuple[ProcessorFactory, ...] = (
    ChainingProcessor,
    WrongLeProcessor,
    GetResponseProcessor,
)


_FOLLOWED_SW1 = frozenset({0x61, 0x6C})  # the SW1 values the default stack acts on

_Follow = Callable[[CommandApdu, ResponseApdu], ResponseApdu]


class SmartCardProtocol:
    """ISO 7816-4 transmission over a connection, through a processor stack.

    With the default stack, :meth:`transmit` takes a short cut for the common
    case, the one exchange the stack would pass through untouched (command
    data that needs no chaining, a status word other than 61xx and 6Cxx): it
    does the bottom layer's exchange itself instead of going down and up
    through every layer, and hands any other first answer to the same layers'
    ``follow``, bottom up. The result is the stack's, exchange for exchange
    (tests/core/test_protocol.py); a per-APDU cost of a few microseconds is
    what separates pkcard from a bare ``SCardTransmit`` (issue #14, G9).
    """

    __slots__ = ("_connection", "_get_response", "_processor", "_send", "_wrong_le")

    def __init__(
        self,
        connection: SmartCardConnection,
        processors: Sequence[ProcessorFactory] | None = None,
    ) -> None:
        self._connection = connection
        bottom = TransmitProcessor(connection)
        processor: ApduProcessor = bottom
        self._send: Callable[[bytes], bytes] | None = None
        if processors is None:  # DEFAULT_PROCESSORS, with the short cut's entry points kept
            get_response = GetResponseProcessor(bottom)
            wrong_le = WrongLeProcessor(get_response)
            processor = ChainingProcessor(wrong_le)
            self._send = connection.transmit
            self._get_response: _Follow = get_response.follow
            self._wrong_le: _Follow = wrong_le.follow
        else:
            for factory in reversed(processors):
                processor = factory(processor)
        self._processor = processor

    @property
    def connection(self) -> SmartCardConnection:
        return self._connection

    @property
    def processor(self) -> ApduProcessor:
        """The top of the processor stack."""
        return self._processor

    def transmit(self, command: CommandApdu) -> ResponseApdu:
        """The final response to ``command``, whatever its status word."""
        send = self._send
        if send is None or len(command.data) > SHORT_MAX_DATA:
            return self._processor.process(command)
        raw = send(command.wire)  # TransmitProcessor's exchange, inlined
        response = ResponseApdu.from_wire(raw)
        if raw[-2] in _FOLLOWED_SW1:  # the layers' own rules, bottom up
            return self._wrong_le(command, self._get_response(command, response))
        return response

    def send_apdu(
        self, cla: int, ins: int, p1: int, p2: int, data: bytes = b"", *, le: int | None = None
    ) -> bytes:
        """The response data; raises :func:`pkcard.sw.error_for_sw` unless the SW is 9000."""
        response = self.transmit(CommandApdu(cla, ins, p1, p2, data, le))
        if response.sw != SW_OK:
            raise error_for_sw(response.sw)
        return response.data

    def select(self, aid: bytes, *, fci: bool = True) -> bytes:
        """SELECT an application by AID; the FCI when ``fci``, else nothing (P2 = 0C)."""
        if fci:
            return self.send_apdu(0x00, INS_SELECT, 0x04, 0x00, aid, le=256)
        return self.send_apdu(0x00, INS_SELECT, 0x04, 0x0C, aid)
