"""The decoder-step kernels emulated in numpy over host memory, launch by launch.

Each "kernel" reads its :class:`StepParams` exactly as ``decoder_step.cu`` does: the
weights at their offsets in the uploaded buffer, rows of the engine's buffers, and the
scratch buffers between phases. So the host side (argument packing, addresses, strides,
parities, scratch, launch order, CUDA-graph capture) runs for real on the CPU; only the
arithmetic inside each phase is the numpy reference's, not the CUDA C's.
"""

from __future__ import annotations

import ctypes
from collections import Counter
from typing import Any

import numpy as np

from rtvoice.engine.cuda_step import PHASES, StepParams
from rtvoice.engine.step_reference import location_features, lstm_cell
from rtvoice.engine.step_weights import PackedStep, StepDims

AH, AC, DH, DC, AW, AWC, CTX = range(7)


def view(ptr: int, shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
    dt = np.dtype(dtype)
    count = int(np.prod(shape))
    raw = (ctypes.c_byte * (count * dt.itemsize)).from_address(ptr)
    return np.frombuffer(raw, dt, count=count).reshape(shape)


class NumpyLauncher:
    """A Launcher whose kernels are numpy phases on host memory."""

    def __init__(self, dims: StepDims) -> None:
        self.dims = dims
        self.launches: Counter[str] = Counter()
        self.cooperative: Counter[str] = Counter()

    def max_blocks_per_sm(self, kernel: str, threads: int, smem: int) -> int:
        return 1

    def weights(self, p: StepParams) -> PackedStep:
        d, h = self.dims, np.float16
        ka, kd = d.prenet + d.encoder + d.attention_rnn, d.attention_rnn + d.encoder + d.decoder_rnn
        packed = PackedStep(
            d, pre0=view(p.pre0, (d.n_mel, d.prenet), h), pre1=view(p.pre1, (d.prenet, d.prenet), h),
            att_w=view(p.att_w, (d.attention_rnn, 4, ka), h), att_b=view(p.att_b, (d.attention_rnn, 4)),
            query=view(p.query, (d.attention, d.attention_rnn), h),
            loc=view(p.loc, (d.attention, 2, d.location_kernel), h), v=view(p.v, (d.attention,), h),
            dec_w=view(p.dec_w, (d.decoder_rnn, 4, kd), h), dec_b=view(p.dec_b, (d.decoder_rnn, 4)),
            out_w=view(p.out_w, (d.outputs, d.decoder_rnn + d.encoder), h), out_b=view(p.out_b, (d.outputs,)))
        return packed.as_float32()

    def launch(self, kernel: str, grid: int, threads: int, smem: int, stream: int, params: ctypes.Structure,
               *, cooperative: bool = False) -> None:
        assert isinstance(params, StepParams) and grid >= 1 and threads == 256
        self.launches[kernel] += 1
        self.cooperative[kernel] += cooperative
        p = params
        if kernel == "k_fused":
            done = view(p.row_done, (p.B,), np.int32) if p.stop_on_gate else None
            s = 0
            while s < p.steps:
                for phase in PHASES:
                    self.phase(phase, p, s)
                s += 1
                if done is not None:  # the kernel's all_done(): every row's gate has fired by now
                    gates = view(p.gate + 4 * (s - 1) * p.gate_step, (p.B, p.r))
                    done |= (gates.astype(np.float64) > p.gate_logit).any(axis=1)
                    if done.all():
                        break
            if p.steps_done:
                view(p.steps_done, (1,), np.int32)[0] = s
        else:
            assert p.steps == 1
            self.phase(kernel, p, 0)

    def phase(self, kernel: str, p: StepParams, s: int) -> None:
        w = self.weights(p)
        B, T, E, A = p.B, p.T, p.E, p.A
        par = s % 2
        st_in = [p.state[par][i] for i in range(7)]
        st_out = [p.state[1 - par][i] for i in range(7)]
        dims_of = {AH: p.Ha, AC: p.Ha, DH: p.Hd, DC: p.Hd, AW: T, AWC: T, CTX: E}

        def state(ptrs: list[int], i: int) -> np.ndarray:
            return view(ptrs[i], (B, dims_of[i]))

        mask = view(p.mask, (B, T), np.bool_)
        if kernel == "k_prenet":
            frame = view(p.frame + 4 * s * p.frame_step, (B, p.r * p.n_mel))[:, -p.n_mel:]
            drop = view(p.drop + 4 * s * p.drop_step, (B, 2, p.P))
            x = np.maximum(frame @ w.pre0, 0) * drop[:, 0]
            view(p.x_pre, (B, p.P))[:] = np.maximum(x @ w.pre1.T, 0) * drop[:, 1]
        elif kernel == "k_att_lstm":
            x = np.concatenate([view(p.x_pre, (B, p.P)), state(st_in, CTX)], axis=1)
            h, c = lstm_cell(w.att_w, w.att_b, x, state(st_in, AH), state(st_in, AC))
            state(st_out, AH)[:], state(st_out, AC)[:] = h, c
        elif kernel == "k_query":
            view(p.pq, (B, A))[:] = state(st_out, AH) @ w.query.T
        elif kernel == "k_energy":
            loc = location_features(w.loc, state(st_in, AW), state(st_in, AWC))
            processed = view(p.processed, (B, T, A))
            pq = state(st_out, AH) @ w.query.T  # k_query's pq, or FOLD_QUERY's own: the same numbers
            e = np.tanh(pq[:, None, :] + loc + processed) @ w.v
            view(p.energy, (B, T))[:] = np.where(mask, -np.inf, e)  # the kernel leaves t >= L unwritten
        elif kernel == "k_context":
            energy = np.where(mask, -np.inf, view(p.energy, (B, T)))
            top = np.max(energy, axis=1, keepdims=True)
            top = np.where(np.isfinite(top), top, 0.0)
            ex = np.exp(energy - top)
            total = ex.sum(axis=1, keepdims=True)
            weights = np.where(total > 0, ex / np.where(total > 0, total, 1.0), 0.0)
            state(st_out, AW)[:] = weights
            state(st_out, AWC)[:] = state(st_in, AWC) + weights
            state(st_out, CTX)[:] = np.einsum("bt,bte->be", weights, view(p.memory, (B, T, E)))
        elif kernel == "k_dec_lstm":
            x = np.concatenate([state(st_out, AH), state(st_out, CTX)], axis=1)
            h, c = lstm_cell(w.dec_w, w.dec_b, x, state(st_in, DH), state(st_in, DC))
            state(st_out, DH)[:], state(st_out, DC)[:] = h, c
        elif kernel == "k_project":
            out = np.concatenate([state(st_out, DH), state(st_out, CTX)], axis=1) @ w.out_w.T + w.out_b
            n = p.r * p.n_mel
            view(p.mel + 4 * s * p.frame_step, (B, n))[:] = out[:, :n]
            view(p.gate + 4 * s * p.gate_step, (B, p.r))[:] = out[:, n:]
        else:
            raise AssertionError(kernel)
