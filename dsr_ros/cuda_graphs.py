"""Replay a CUDA graph of the net's forward for each input shape a camera keeps sending.

Why: the lite net runs 2-3 ms per frame on an H100 and launches a few hundred small kernels
(transposed convolutions, PReLUs, the bicubic residual); at that size the launches, not the
arithmetic, set the time. A camera's frame size never changes, so the net's input shape per
frame is fixed: capture the forward once as a CUDA graph and replay it (one launch).

:class:`CudaGraphRunner` wraps a forward ``(N, C, h, w) -> tensor``:

* a shape runs eagerly for its first ``settle`` calls (cuDNN picks its algorithms, the
  caching allocator settles), then the next call captures a graph and every later call with
  that shape copies its input into the graph's static input and replays;
* a new shape (another camera mode, a self-ensemble's transposed members) runs eagerly until
  it has settled too, then gets its own graph; at most ``max_graphs`` are kept (least recently
  used dropped), since each holds its own memory;
* a capture that fails logs one line and leaves that shape eager for good;
* ``key`` and ``forward`` per call let one runner replay a whole frame (the torch frame
  pipeline's :meth:`~dsr_ros.frame_pipeline_torch.TorchFramePipeline.device_frame`), whose
  graph also depends on settings besides the input's shape;
* off CUDA it is a pass-through.

The capture is injectable (``capture``), so the fallback logic is tested on a CPU.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Callable, Dict, Optional, Set, Tuple

import torch

__all__ = ['Capture', 'CudaGraphRunner', 'capture_cuda_graph']

LOGGER = logging.getLogger(__name__)

Forward = Callable[[torch.Tensor], torch.Tensor]
#: ``capture(forward, example) -> (replay, static_input, static_output)``: after
#: ``static_input.copy_(x); replay()``, ``static_output`` holds ``forward(x)``.
Capture = Callable[[Forward, torch.Tensor],
                   Tuple[Callable[[], Any], torch.Tensor, torch.Tensor]]
Key = Tuple[Any, ...]
#: Shapes whose eager calls are counted at once (older counts are forgotten).
MAX_COUNTED_SHAPES = 64


def capture_cuda_graph(forward: Forward, example: torch.Tensor, warmup_passes: int = 2
                       ) -> Tuple[Callable[[], Any], torch.Tensor, torch.Tensor]:
    """Capture ``forward`` on a copy of ``example`` as a CUDA graph (torch's recipe: warm-up
    passes on a side stream, then capture)."""
    device = example.device
    static_input = example.clone()
    stream = torch.cuda.Stream(device=device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(warmup_passes):
            forward(static_input)
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_output = forward(static_input)
    return graph.replay, static_input, static_output


class CudaGraphRunner:
    """A forward that replays a captured graph per input shape (see the module docstring).

    Args:
        forward: the eager forward; also what a graph captures.
        device: where it runs; graphs only on CUDA unless ``enabled`` says otherwise.
        settle: eager calls of a shape before its graph is captured.
        max_graphs: graphs kept at once.
        capture: how a graph is made (default :func:`capture_cuda_graph`).
        enabled: default: ``device`` is CUDA.

    The returned tensor is a copy of the graph's output (the next replay overwrites that), so
    callers may keep it; with ``clone_output=False`` it is the graph's own output, valid until
    the next call (for a caller that copies it to the host at once).
    """

    def __init__(self, forward: Optional[Forward], device: torch.device, *, settle: int = 3,
                 max_graphs: int = 4, capture: Optional[Capture] = None,
                 enabled: Optional[bool] = None, clone_output: bool = True) -> None:
        if settle < 0 or max_graphs < 1:
            raise ValueError(f'settle must be >= 0 and max_graphs >= 1, got {settle} and '
                             f'{max_graphs}')
        self.forward = forward
        self.device = torch.device(device)
        self.settle = int(settle)
        self.max_graphs = int(max_graphs)
        self.capture: Capture = capture or capture_cuda_graph
        self.enabled = self.device.type == 'cuda' if enabled is None else bool(enabled)
        self.clone_output = bool(clone_output)
        self._graphs: 'OrderedDict[Key, Tuple[Callable[[], Any], torch.Tensor, torch.Tensor]]' \
            = OrderedDict()
        self._seen: 'OrderedDict[Key, int]' = OrderedDict()
        self._failed: Set[Key] = set()
        #: Counts for benchmarks and tests: eager calls, graph replays, captures, failures.
        self.stats: Dict[str, int] = {'eager': 0, 'replays': 0, 'captures': 0, 'failures': 0}

    def __call__(self, batch: torch.Tensor, key: Tuple[Any, ...] = (),
                 forward: Optional[Forward] = None) -> torch.Tensor:
        """``forward(batch)`` (default: the constructor's), replayed when settled. ``key``:
        whatever else the result depends on (settings), hashable; it joins the shape in
        telling graphs apart."""
        forward = forward or self.forward
        if not self.enabled:
            return forward(batch)
        key = (tuple(batch.shape), batch.dtype, tuple(batch.stride()), str(batch.device), key)
        graph = self._graphs.get(key)
        if graph is None and key not in self._failed and self._count(key) > self.settle:
            graph = self._capture(key, batch, forward)
        if graph is None:
            self.stats['eager'] += 1
            return forward(batch)
        self._graphs.move_to_end(key)
        replay, static_input, static_output = graph
        static_input.copy_(batch)
        replay()
        self.stats['replays'] += 1
        return static_output.clone() if self.clone_output else static_output

    @property
    def shapes(self) -> Tuple[Tuple[int, ...], ...]:
        """Input shapes that have a graph now, least recently used first."""
        return tuple(key[0] for key in self._graphs)

    def _count(self, key: Key) -> int:
        """Calls of this shape so far, this one included."""
        count = self._seen.pop(key, 0) + 1
        self._seen[key] = count
        while len(self._seen) > MAX_COUNTED_SHAPES:
            self._seen.popitem(last=False)
        return count

    def _capture(self, key: Key, batch: torch.Tensor, forward: Forward
                 ) -> Optional[Tuple[Callable[[], Any], torch.Tensor, torch.Tensor]]:
        try:
            graph = self.capture(forward, batch)
        except Exception as error:  # noqa: BLE001 - any failure means: stay eager
            self._failed.add(key)
            self.stats['failures'] += 1
            LOGGER.warning('CUDA graph capture failed for input %s (%s: %s); this shape runs '
                           'eagerly', 'x'.join(map(str, key[0])), type(error).__name__,
                           str(error).splitlines()[0] if str(error) else '')
            return None
        self.stats['captures'] += 1
        self._graphs[key] = graph
        while len(self._graphs) > self.max_graphs:
            self._graphs.popitem(last=False)
        return graph
