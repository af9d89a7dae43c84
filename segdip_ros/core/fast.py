"""Opt-in speed-ups of the training step, measured by `segdip-bench speed` (docs/speed.md).

Nothing here changes what a session learns: `FastStepper.step(session, n)` runs the same
iterations as `TrainingSession.step(n)` (same losses, clipping, AMSGrad step, TCL base update,
non-finite skip), only computed differently. Which changes are applied is a `Plan`;
`choose_plan(device)` gives the measured default for a device. CUDA-only items (CUDA graphs,
pinned host memory, fp16/bf16 autocast) are chosen only for a CUDA device and fail over to the
eager path on any error.

What paid on CPU is now the session's own path (channels-last model and code; the half-size
network is `SessionConfig.network_scale`); what stays here is opt-in: torch.compile, CUDA
graphs, and the candidate plans `segdip-bench speed --candidates` measures. The stepper reads
the session's private training state (model, optimiser, code, target, labels, TCL base), so it
is called as `FastStepper(plan).step(session, n)` in place of `session.step(n)`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from .errors import TrainingError
from .losses import reconstruction_loss, tcl_loss, tcl_target

if TYPE_CHECKING:
    from .session import StepResult, TrainingSession

__all__ = ['Plan', 'REFERENCE_PLAN', 'PLAIN_PLAN', 'choose_plan', 'forward_fast', 'FastStepper', 'predict_probabilities',
           'pin_for', 'cpu_native_bf16', 'conv2d_flops', 'model_conv_flops', 'compile_or_none']

MEMORY_FORMATS = ('contiguous', 'channels_last')
GRAPH_MODES = ('eager', 'compile', 'cuda-graph')


@dataclass(frozen=True)
class Plan:
    """How the step is computed.

    memory_format: 'contiguous' (NCHW) or 'channels_last' (NHWC) for model and input code.
    amp: None (fp32), torch.bfloat16 or torch.float16 autocast of the forward pass.
    graph: 'eager', 'compile' (torch.compile of forward + losses, cached, eager on failure) or
        'cuda-graph' (CUDA only: the whole iteration captured once and replayed).
    defer_sync: keep losses as tensors and read them once per step(n), not every iteration.
    detach_shortcut: feed the seg head x.detach() when seg_trunk_grad == 0 instead of
        x * 0 + x.detach() (same values and gradients, two full-size kernels fewer).
    foreach: multi-tensor gradient clipping and optimiser update.
    pin_memory: page-locked host buffers for frame uploads (CUDA only).
    """

    memory_format: str = 'contiguous'
    amp: torch.dtype | None = None
    graph: str = 'eager'
    defer_sync: bool = True
    detach_shortcut: bool = True
    foreach: bool = False
    pin_memory: bool = False

    def validate(self) -> None:
        if self.memory_format not in MEMORY_FORMATS:
            raise ValueError(f'memory_format must be one of {MEMORY_FORMATS}, '
                             f'got {self.memory_format!r}')
        if self.graph not in GRAPH_MODES:
            raise ValueError(f'graph must be one of {GRAPH_MODES}, got {self.graph!r}')
        if self.amp not in (None, torch.bfloat16, torch.float16):
            raise ValueError(f'amp must be None, torch.bfloat16 or torch.float16, got {self.amp}')


# TrainingSession.step's own math (the session keeps model and code in channels_last)
REFERENCE_PLAN = Plan(memory_format='channels_last', defer_sync=False, detach_shortcut=False)
# the same in plain NCHW: the base the candidate optimisations are measured against
PLAIN_PLAN = replace(REFERENCE_PLAN, memory_format='contiguous')


def choose_plan(device: torch.device, amp: str = 'auto',
                bf16_supported: Callable[[], bool] | None = None) -> Plan:
    """The measured default plan for `device` (see docs/speed.md for the CPU figures).

    CPU: channels_last + detach shortcut + deferred loss reads, fp32, eager (bf16 autocast and
    torch.compile did not pay on the measured CPU). CUDA: channels_last, bf16 autocast (fp16
    where bf16 is unsupported), CUDA graph, pinned uploads. `amp` 'off' forces fp32; 'bf16' /
    'fp16' force that dtype (fp16 only on CUDA).
    """
    if device.type == 'cuda':
        supported = bf16_supported or torch.cuda.is_bf16_supported
        dtype: torch.dtype | None = torch.bfloat16 if supported() else torch.float16
        if amp == 'off':
            dtype = None
        elif amp == 'bf16':
            dtype = torch.bfloat16
        elif amp == 'fp16':
            dtype = torch.float16
        return Plan(memory_format='channels_last', amp=dtype, graph='cuda-graph',
                    pin_memory=True)
    if amp == 'fp16':
        raise ValueError('amp fp16 needs a CUDA device; use bf16 or off on CPU')
    return Plan(memory_format='channels_last', amp=torch.bfloat16 if amp == 'bf16' else None)


def cpu_native_bf16() -> bool:
    """True when this CPU computes bf16 natively (AVX512-BF16 or AMX), where CPU bf16
    autocast can pay (docs/speed.md); False when unknown."""
    checks = ('_is_avx512_bf16_supported', '_is_amx_tile_supported')
    try:
        return any(getattr(torch.cpu, name)() for name in checks if hasattr(torch.cpu, name))
    except Exception:  # noqa: BLE001 - private probes: any failure means unknown
        return False


def pin_for(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`tensor` in page-locked memory when it is going to a CUDA device, else unchanged."""
    if device.type == 'cuda' and tensor.device.type == 'cpu' and not tensor.is_pinned():
        return tensor.pin_memory()
    return tensor


# ----- model -----------------------------------------------------------------------------
def forward_fast(model: nn.Module, z: torch.Tensor,
                 detach_shortcut: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """SegDipNet.forward with the seg_trunk_grad == 0 shortcut (x.detach() instead of
    x * 0 + x.detach() * 1). Same outputs and parameter gradients as model(z)."""
    x = z
    for block in model.encoder:
        x = block(x)                              # (1, W, h / 2^i, w / 2^i)
    for block in model.decoder:
        x = block(model.upsample(x))              # (1, W, 2h, 2w)
    g = model.seg_trunk_grad
    if g >= 1.0:
        feats = x
    elif g <= 0.0 and detach_shortcut:
        feats = x.detach()
    else:
        feats = x * g + x.detach() * (1.0 - g)
    if model._head_sees_code:
        feats = torch.cat([feats, z], dim=1)
    return torch.sigmoid(model.rgb_head(x)), model.seg_head(feats)


def _losses(model: nn.Module, code: torch.Tensor, target: torch.Tensor, labels: torch.Tensor,
            prev: torch.Tensor | None, has_labels: bool, tcl: bool, lam: float, w_rec: float,
            w_seg: float, norm: torch.Tensor, num_classes: int, amp: torch.dtype | None,
            shortcut: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, reconstruction, annotation, probs): TrainingSession._one_iteration's forward."""
    with torch.autocast(code.device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
        rgb, logits = forward_fast(model, code, shortcut)
    probs = torch.softmax(logits.float(), dim=1)
    rec = reconstruction_loss(rgb, target)
    loss = w_rec * rec
    seg = torch.zeros((), device=code.device)
    if has_labels:
        annotated = labels >= 0
        if tcl:
            tgt = tcl_target(prev, labels, num_classes)
            weights = torch.where(annotated, 1.0, lam if prev is not None else 0.0)
        else:
            tgt = tcl_target(None, labels, num_classes)
            weights = annotated.float()
        seg = tcl_loss(probs, tgt, weights, 1.0) / norm
        loss = loss + w_seg * seg
    return loss, rec, seg, probs


def compile_or_none(fn: Callable[..., Any], **kwargs: Any) -> Callable[..., Any] | None:
    """torch.compile(fn) or None when torch.compile is unavailable (errors surface at the
    first call; FastStepper then falls back to eager)."""
    try:
        return torch.compile(fn, **kwargs)
    except Exception:  # noqa: BLE001 - any failure means: stay eager
        return None


@torch.inference_mode()
def predict_probabilities(model: nn.Module, code: torch.Tensor,
                          amp: torch.dtype | None = None) -> torch.Tensor:
    """(1, N, h, w) float32 class probabilities, like TrainingSession.working_probabilities
    but under inference_mode (no version counters; the result cannot enter autograd)."""
    with torch.autocast(code.device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
        _, logits = forward_fast(model, code)
    return torch.softmax(logits.float(), dim=1)


# ----- the stepper -----------------------------------------------------------------------
class FastStepper:
    """Runs TrainingSession iterations under a Plan. Re-prepares itself when the session
    builds a new model (new scene). `compile_seconds` accumulates torch.compile time."""

    def __init__(self, plan: Plan) -> None:
        plan.validate()
        self.plan = plan
        self._model: nn.Module | None = None
        self._compiled: Callable[..., Any] | None = None
        self._graph: _CudaGraphStep | None = None
        self.compile_seconds = 0.0
        self._compiled_once = False
        self.fallbacks: list[str] = []

    def prepare(self, session: TrainingSession) -> None:
        """Apply the plan to the session's current model and input code (idempotent)."""
        model = session._model
        if model is None or model is self._model:
            return
        fmt = torch.channels_last if self.plan.memory_format == 'channels_last' \
            else torch.contiguous_format
        model.to(memory_format=fmt)
        session._code = session._code.contiguous(memory_format=fmt)
        if self.plan.foreach:
            for group in session._optimizer.param_groups:
                group['foreach'] = True
        self._model = model
        self._graph = None
        if self.plan.graph == 'compile' and self._compiled is None:
            self._compiled = compile_or_none(_losses, dynamic=False)
            if self._compiled is None:
                self._fallback('torch.compile unavailable')

    def _fallback(self, why: str) -> None:
        self.fallbacks.append(why)
        self.plan = replace(self.plan, graph='eager')
        self._compiled = None

    def step(self, session: TrainingSession, iterations: int = 1) -> StepResult:
        """The same contract as TrainingSession.step (call it under no other lock)."""
        from .session import StepResult  # noqa: PLC0415 - session imports this module's users
        if iterations < 0:
            raise ValueError(f'iterations must be >= 0, got {iterations}')
        session._require_image()
        t0 = time.perf_counter()
        last: tuple[Any, ...] = (float('nan'),) * 3
        nonfinite = 0
        for _ in range(iterations):
            with session._lock:
                self.prepare(session)
                try:
                    losses = self._iteration(session)
                except torch.cuda.OutOfMemoryError as err:
                    session._optimizer.zero_grad(set_to_none=True)
                    torch.cuda.empty_cache()
                    raise TrainingError(f'out of memory on {session.device} at working size '
                                        f'{session.work_size}: lower working_size or width') from err
            if losses is None:
                nonfinite += 1
            else:
                last = losses
        values = [float(v) for v in last]
        return StepResult(iterations, values[0], values[1], values[2],
                          time.perf_counter() - t0, nonfinite)

    def _iteration(self, s: TrainingSession) -> tuple[Any, ...] | None:
        if self.plan.graph == 'cuda-graph':
            out = self._graph_iteration(s)
            if out is not NotImplemented:
                return out
        model, opt, cfg = s._model, s._optimizer, s.cfg
        opt.zero_grad(set_to_none=True)
        args = (model, s._code, s._target, s._labels, s._prev_probs, s._has_labels,
                cfg.loss.tcl, cfg.loss.tcl_lambda, cfg.loss.reconstruction_weight,
                cfg.loss.annotation_weight,
                torch.tensor(max(1.0, float(s._label_norm)), device=s.device),
                s.num_classes, self.plan.amp, self.plan.detach_shortcut)
        loss = rec = seg = probs = None
        first_compiled = self._compiled is not None and not self._compiled_once
        t = time.perf_counter()
        if self._compiled is not None:
            try:
                loss, rec, seg, probs = self._compiled(*args)
            except Exception as err:  # noqa: BLE001 - compile problems must not stop training
                self._fallback(f'torch.compile failed: {err!r}'[:300])
        if loss is None:
            loss, rec, seg, probs = _losses(*args)
        if not torch.isfinite(loss):
            opt.zero_grad(set_to_none=True)
            return None
        loss.backward()                   # the compiled backward is built at the first call
        if first_compiled:
            self.compile_seconds += time.perf_counter() - t   # forward + backward compile
            self._compiled_once = True
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip,
                                       foreach=True if self.plan.foreach else None)
        opt.step()
        s._update_tcl_base(probs.detach())
        s.iteration += 1
        out = (loss.detach(), rec.detach(), seg.detach())
        return out if self.plan.defer_sync else tuple(float(v) for v in out)

    def _graph_iteration(self, s: TrainingSession) -> Any:
        """CUDA-graph replay, or NotImplemented (eager) when capture is impossible."""
        if s.device.type != 'cuda':
            self._fallback(f'cuda-graph asked for on {s.device}')
            return NotImplemented
        try:
            if self._graph is None or not self._graph.matches(s):
                self._graph = _CudaGraphStep(s, self.plan)
            return self._graph.replay(s)
        except Exception as err:  # noqa: BLE001 - any capture problem: stay eager
            self._fallback(f'CUDA graph capture failed: {err!r}'[:300])
            return NotImplemented


class _CudaGraphStep:
    """One captured iteration (forward, losses, backward, clip, AMSGrad) for a fixed session
    state; re-captured when the labels / TCL base presence changes. Needs an optimiser created
    with capturable=True, so it builds its own from the session's hyper-parameters and state.
    Not run on the development machine (no GPU): every failure falls back to eager."""

    def __init__(self, s: TrainingSession, plan: Plan) -> None:
        if s.cfg.loss.tcl_momentum > 0 or s.cfg.loss.tcl_anchor != 'previous':
            raise NotImplementedError('CUDA graph step supports the paper TCL base only')
        opt = s._optimizer
        for group in opt.param_groups:
            group['capturable'] = True
        self.key = self._key(s)
        self.norm = torch.ones((), device=s.device)
        self.prev = s._prev_probs if s._prev_probs is not None else None
        self.plan = plan
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):                       # warm-up on a side stream (required)
                self._body(s)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            self.out = self._body(s)

    @staticmethod
    def _key(s: TrainingSession) -> tuple[Any, ...]:
        return (id(s._model), s._has_labels, s._prev_probs is not None, id(s._labels))

    def matches(self, s: TrainingSession) -> bool:
        return self._key(s) == self.key

    def _body(self, s: TrainingSession) -> tuple[torch.Tensor, ...]:
        cfg = s.cfg
        loss, rec, seg, probs = _losses(
            s._model, s._code, s._target, s._labels, self.prev, s._has_labels, cfg.loss.tcl,
            cfg.loss.tcl_lambda, cfg.loss.reconstruction_weight, cfg.loss.annotation_weight,
            self.norm, s.num_classes, self.plan.amp, True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(s._model.parameters(), cfg.grad_clip, foreach=True)
        s._optimizer.step()
        if self.prev is not None:
            self.prev.copy_(probs.detach())           # TCL base, in place (static address)
        return loss.detach(), rec.detach(), seg.detach(), probs.detach()

    def replay(self, s: TrainingSession) -> tuple[torch.Tensor, ...]:
        self.norm.fill_(max(1.0, float(s._label_norm)))
        self.graph.replay()
        if self.prev is None:
            s._update_tcl_base(self.out[3].clone())
        s.iteration += 1
        return self.out[:3]


# ----- FLOP counting ---------------------------------------------------------------------
def conv2d_flops(cin: int, cout: int, kernel: int, height: int, width: int,
                 groups: int = 1) -> int:
    """Forward FLOPs of one conv: 2 * Cin/groups * Cout * k * k * H_out * W_out (a
    multiply-add counts 2)."""
    return 2 * (cin // groups) * cout * kernel * kernel * height * width


def model_conv_flops(model: nn.Module, code: torch.Tensor) -> int:
    """Forward conv FLOPs of one model(code) call, from the layer shapes (a forward on the
    meta device records each Conv2d's output size). Training step = 3x this (forward,
    input-gradient and weight-gradient convolutions)."""
    total = 0

    def hook(mod: nn.Conv2d, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        total += conv2d_flops(mod.in_channels, mod.out_channels, mod.kernel_size[0],
                              out.shape[-2], out.shape[-1], mod.groups)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model(code)
    finally:
        for h in handles:
            h.remove()
    return total
