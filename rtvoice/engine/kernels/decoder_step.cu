// Tacotron 2's decoder step as CUDA kernels (issue 26), compiled at run time by NVRTC.
//
// The algorithm is rtvoice/engine/step_reference.py's, on the packed weights of
// rtvoice/engine/step_weights.py (fp16 weights, fp32 accumulation, fp32 state). One step
// is seven phases; each phase spreads its work items over whatever grid runs it
// (grid-stride loops), so the same phase code serves two drivers:
//   - k_<phase>: one kernel per phase, seven launches a step (captured in a CUDA graph);
//   - k_fused:   every phase of `steps` steps in one launch, with a grid-wide barrier
//                between phases (all blocks must be resident: grid <= SMs x occupancy),
//                optionally stopping on the device once every row's gate has fired.
// No headers: NVRTC compiles this alone (fp16 is converted with one PTX instruction).
// RTVOICE_EMULATE: compiled as C++ on the CPU by tests/cuda_backend/kernel_emulation.cpp, one
// host thread per CUDA thread, so the CPU suite runs this very code.
// Data written inside a launch is never read through the non-coherent (__ldg) path;
// only the weights are.

typedef unsigned short half_t;
typedef long long i64;

#define THREADS 256
#define WARPS (THREADS / 32)
// The shape of the work items: NVRTC -D defines (rtvoice/engine/cuda_step.py's KernelShape,
// part of the cubin's cache key); these defaults are KernelShape's (a test compares them).
#ifndef TILE
#define TILE 16       // attention positions per energy work item
#endif
#ifndef QUAD
#define QUAD 4        // consecutive positions one thread computes (TILE % QUAD == 0)
#endif
#ifndef CTX_CH
#define CTX_CH 64     // encoder channels per context work item (THREADS % CTX_CH == 0)
#endif
#ifndef WARP_SCAN
#define WARP_SCAN 0   // 1: each warp finds a row's text length alone, no block barrier (row_length)
#endif
#ifndef LSTM_UNROLL
#define LSTM_UNROLL 2 // chunks of weights an LSTM lane has in flight (registers: 32 floats each)
#endif
#ifndef INNER_UNROLL
#define INNER_UNROLL 0 // >0: unroll the prenet's and the location conv's serial loops by this much,
#endif                 // so more weight loads are in flight (0: the compiler's choice)
#ifndef FOLD_QUERY
#define FOLD_QUERY 0  // 1: no query phase; each energy work item computes its row's query itself
#endif
// FUSED_MAXREG (optional): cap k_fused's registers (__maxnreg__), so more of its blocks fit
// on an SM (64K registers / (256 threads x cap)); unset, ptxas picks (128 on sm_90).
#if TILE % QUAD != 0 || THREADS % CTX_CH != 0
#error "TILE must be a multiple of QUAD, and THREADS of CTX_CH"
#endif
#ifdef FUSED_MAXREG
#define FUSED_BOUNDS __maxnreg__(FUSED_MAXREG)
#else
#define FUSED_BOUNDS __launch_bounds__(THREADS)
#endif
#define ROWS 4        // batch rows an LSTM warp accumulates at once
#define PRAGMA(x) _Pragma(#x)
#define UNROLL(n) PRAGMA(unroll n)
#if INNER_UNROLL > 0
#define INNER_LOOP UNROLL(INNER_UNROLL)
#else
#define INNER_LOOP
#endif
#define RED 0         // smem floats [0, 16): block reductions
#define SLOT 16       // smem int slot: a row's text length
#define DATA 32       // smem floats from here: the phase's own data
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
#ifdef RTVOICE_EMULATE
#define DYNAMIC_SMEM(name) float* name = emu_smem()
#define SPIN_PAUSE() emu_yield()
#else
#define DYNAMIC_SMEM(name) extern __shared__ float name[]
#define SPIN_PAUSE()
#endif

// The parameters of one launch, passed by value. Field order and types must match
// StepParams in rtvoice/engine/cuda_step.py (a test compares the two).
struct StepParams {
    const half_t* pre0; const half_t* pre1;
    const half_t* att_w; const float* att_b;
    const half_t* query; const half_t* loc; const half_t* v;
    const half_t* dec_w; const float* dec_b;
    const half_t* out_w; const float* out_b;
    const float* frame;          // step 0's input frames (B, r * n_mel); step s: + s * frame_step
    float* mel;                  // step 0's output frames (B, r * n_mel); step s: + s * frame_step
    float* gate;                 // (B, r); step s: + s * gate_step
    const float* drop;           // prenet masks (B, 2, P); step s: + s * drop_step
    const float* memory;         // (B, T, E)
    const float* processed;      // (B, T, A)
    const unsigned char* mask;   // (B, T), 1 = padding
    float* state[2][7];          // two parities of (ah, ac, dh, dc, aw, awc, ctx); step s reads s % 2
    float* x_pre;                // scratch (B, P)
    float* pq;                   // scratch (B, A)
    float* energy;               // scratch (B, T)
    unsigned int* barrier;       // 2 words, zero before the first launch (k_fused only)
    int* row_done;               // (B,) zero before each launch with stop_on_gate
    int* steps_done;             // k_fused writes the steps it ran (may be null)
    i64 B, T, n_mel, r, P, E, Ha, Hd, A, K;
    i64 steps, frame_step, gate_step, drop_step;
    i64 stop_on_gate;
    double gate_logit;           // a row is done once a gate logit exceeds this
};

enum { AH = 0, AC = 1, DH = 2, DC = 3, AW = 4, AWC = 5, CTX = 6 };

struct Step {
    const float* frame; float* mel; float* gate; const float* drop;
    float* const* in; float* const* out;
};

__device__ __forceinline__ Step step_of(const StepParams& p, i64 s) {
    Step st;
    st.frame = p.frame + s * p.frame_step;
    st.mel = p.mel + s * p.frame_step;
    st.gate = p.gate + s * p.gate_step;
    st.drop = p.drop + s * p.drop_step;
    st.in = p.state[s & 1];
    st.out = p.state[(s & 1) ^ 1];
    return st;
}

__device__ __forceinline__ float h2f(half_t h) {
#ifdef RTVOICE_EMULATE
    return emu_h2f(h);
#else
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#endif
}

__device__ __forceinline__ float ldh(const half_t* p) { return h2f(__ldg(p)); }

// Eight weights at once (16 bytes; the packing keeps these aligned).
__device__ __forceinline__ void load8(const half_t* p, float w[8]) {
    uint4 q = __ldg(reinterpret_cast<const uint4*>(p));
    unsigned int u[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        w[2 * i] = h2f((half_t)(u[i] & 0xffffu));
        w[2 * i + 1] = h2f((half_t)(u[i] >> 16));
    }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ float block_sum(float v, float* smem) {
    v = warp_sum(v);
    if (threadIdx.x % 32 == 0) smem[RED + threadIdx.x / 32] = v;
    __syncthreads();
    float r = 0.f;
    for (int i = 0; i < WARPS; ++i) r += smem[RED + i];
    __syncthreads();
    return r;
}

__device__ float block_max(float v, float* smem) {
    v = warp_max(v);
    if (threadIdx.x % 32 == 0) smem[RED + threadIdx.x / 32] = v;
    __syncthreads();
    float r = -INFINITY;
    for (int i = 0; i < WARPS; ++i) r = fmaxf(r, smem[RED + i]);
    __syncthreads();
    return r;
}

__device__ __forceinline__ float sigmoid(float x) { return 1.f / (1.f + expf(-x)); }

// Positions [0, L) hold every unmasked symbol of row b: L = last unmasked + 1. Positions
// masked inside [0, L) (a mask with holes) still get -inf energy, as in the ONNX step.
#if WARP_SCAN
// Each warp alone: one coalesced read of the row's mask (16 bytes a lane when rows are
// 16-byte aligned) and a warp max, no shared memory and no block barrier. Every warp gets
// the same L, so branches on it stay uniform across the block.
__device__ int row_length(const StepParams& p, i64 b, float* smem) {
    const int lane = threadIdx.x % 32;
    const unsigned char* m = p.mask + b * p.T;
    int last = 0;
    if (p.T % 16 == 0 && reinterpret_cast<unsigned long long>(m) % 16 == 0) {
        for (i64 c = lane; c < p.T / 16; c += 32) {
            const uint4 q = *reinterpret_cast<const uint4*>(m + c * 16);
            const unsigned int u[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
            for (int i = 0; i < 16; ++i)  // byte i of the 16, little-endian; 0 = a symbol
                if (((u[i / 4] >> (8 * (i % 4))) & 0xffu) == 0u) last = (int)(c * 16) + i + 1;
        }
    } else {
        for (i64 t = lane; t < p.T; t += 32)
            if (!m[t]) last = (int)t + 1;
    }
    return (int)warp_max((float)last);  // exact: lengths are far below 2^24
}
#else
__device__ int row_length(const StepParams& p, i64 b, float* smem) {
    int* slot = reinterpret_cast<int*>(smem + SLOT);
    if (threadIdx.x == 0) *slot = 0;
    __syncthreads();
    int last = 0;
    for (i64 t = threadIdx.x; t < p.T; t += THREADS)
        if (!p.mask[b * p.T + t]) last = (int)t + 1;
    atomicMax(slot, last);
    __syncthreads();
    int n = *slot;
    __syncthreads();
    return n;
}
#endif

// Grid-wide barrier (sense by generation): every block of the launch must be resident.
__device__ void grid_barrier(unsigned int* bar) {
    __syncthreads();
    if (threadIdx.x == 0) {
        volatile unsigned int* gen = bar + 1;
        unsigned int seen = *gen;
        __threadfence();
        if (atomicAdd(bar, 1u) == gridDim.x - 1) {
            atomicExch(bar, 0u);
            __threadfence();
            atomicAdd(bar + 1, 1u);
        } else {
            while (*gen == seen) {
                SPIN_PAUSE();
            }
        }
        __threadfence();
    }
    __syncthreads();
}

// 1. Prenet: item = (row, 32 outputs of layer 2); layer 1 is recomputed per item (small).
__device__ void phase_prenet(const StepParams& p, const Step& s, float* smem) {
    const i64 P = p.P, M = p.n_mel, chunks = (P + 31) / 32;
    float* x0 = smem + DATA;
    float* x1 = x0 + M;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (i64 item = blockIdx.x; item < p.B * chunks; item += gridDim.x) {
        const i64 b = item / chunks, chunk = item % chunks;
        const float* frame = s.frame + b * p.r * M + (p.r - 1) * M;  // the last frame of the step fed back
        const float* drop = s.drop + b * 2 * P;
        for (i64 k = threadIdx.x; k < M; k += THREADS) x0[k] = frame[k];
        __syncthreads();
        for (i64 j = threadIdx.x; j < P; j += THREADS) {
            float acc = 0.f;
            INNER_LOOP
            for (i64 k = 0; k < M; ++k) acc += x0[k] * ldh(p.pre0 + k * P + j);
            x1[j] = fmaxf(acc, 0.f) * drop[j];
        }
        __syncthreads();
        for (i64 o = warp; o < 32; o += WARPS) {
            const i64 j = chunk * 32 + o;
            if (j < P) {
                float acc = 0.f;
                for (i64 k = lane; k < P; k += 32) acc += x1[k] * ldh(p.pre1 + j * P + k);
                acc = warp_sum(acc);
                if (lane == 0) p.x_pre[b * P + j] = fmaxf(acc, 0.f) * drop[P + j];
            }
        }
        __syncthreads();
    }
}

// 2 and 6. An LSTM cell: one warp per hidden unit, its four gate rows [W | R] contiguous;
// input = [in1 (n1) | in2 (n2) | h (H)], each a multiple of 8 long.
__device__ void phase_lstm(const StepParams& p, const half_t* W, const float* bias, i64 H,
                           const float* in1, i64 n1, const float* in2, i64 n2,
                           const float* h_in, const float* c_in, float* h_out, float* c_out) {
    const i64 K = n1 + n2 + H, chunks = K / 8;
    const int lane = threadIdx.x % 32;
    const i64 nw = (i64)gridDim.x * WARPS;
    for (i64 j = (i64)blockIdx.x * WARPS + threadIdx.x / 32; j < H; j += nw) {
        const half_t* wj = W + j * 4 * K;
        for (i64 b0 = 0; b0 < p.B; b0 += ROWS) {
            float acc[ROWS][4];
#pragma unroll
            for (int rb = 0; rb < ROWS; ++rb)
#pragma unroll
                for (int g = 0; g < 4; ++g) acc[rb][g] = 0.f;
            UNROLL(LSTM_UNROLL)  // several chunks' loads in flight at once: the weights stream from L2/HBM
            for (i64 c = lane; c < chunks; c += 32) {
                const i64 k = c * 8;
                float w[4][8];
#pragma unroll
                for (int g = 0; g < 4; ++g) load8(wj + g * K + k, w[g]);
#pragma unroll
                for (int rb = 0; rb < ROWS; ++rb) {
                    const i64 b = b0 + rb;
                    if (b < p.B) {
                        const float* src = k < n1 ? in1 + b * n1 + k
                                         : k < n1 + n2 ? in2 + b * n2 + (k - n1)
                                         : h_in + b * H + (k - n1 - n2);
                        float x[8];
#pragma unroll
                        for (int e = 0; e < 8; ++e) x[e] = src[e];
#pragma unroll
                        for (int g = 0; g < 4; ++g)
#pragma unroll
                            for (int e = 0; e < 8; ++e) acc[rb][g] += w[g][e] * x[e];
                    }
                }
            }
#pragma unroll
            for (int rb = 0; rb < ROWS; ++rb) {
                const i64 b = b0 + rb;
                if (b < p.B) {  // uniform across the warp
                    const float gi = warp_sum(acc[rb][0]) + bias[j * 4 + 0];
                    const float go = warp_sum(acc[rb][1]) + bias[j * 4 + 1];
                    const float gf = warp_sum(acc[rb][2]) + bias[j * 4 + 2];
                    const float gc = warp_sum(acc[rb][3]) + bias[j * 4 + 3];
                    if (lane == 0) {
                        const float c = sigmoid(gf) * c_in[b * H + j] + sigmoid(gi) * tanhf(gc);
                        c_out[b * H + j] = c;
                        h_out[b * H + j] = sigmoid(go) * tanhf(c);
                    }
                }
            }
        }
    }
}

// query[a, :] . ah[b, :] by one warp, summed in the same order wherever it runs.
__device__ __forceinline__ float query_dot(const StepParams& p, const float* ah, i64 a, i64 b) {
    const int lane = threadIdx.x % 32;
    const half_t* wa = p.query + a * p.Ha;
    float acc = 0.f;
    for (i64 c = lane; c < p.Ha / 8; c += 32) {
        float w[8];
        load8(wa + c * 8, w);
        const float* x = ah + b * p.Ha + c * 8;
#pragma unroll
        for (int e = 0; e < 8; ++e) acc += w[e] * x[e];
    }
    return warp_sum(acc);
}

// 3. Query: pq[b, a] = query[a, :] . ah[b, :]; one warp per attention channel. With
// FOLD_QUERY the energies phase does this for its own row instead (no launch, no grid
// barrier; every energy item of a row repeats its row's A x Ha products).
__device__ void phase_query(const StepParams& p, const Step& s) {
    const i64 nw = (i64)gridDim.x * WARPS;
    const int lane = threadIdx.x % 32;
    for (i64 a = (i64)blockIdx.x * WARPS + threadIdx.x / 32; a < p.A; a += nw) {
        for (i64 b = 0; b < p.B; ++b) {
            const float acc = query_dot(p, s.out[AH], a, b);
            if (lane == 0) p.pq[b * p.A + a] = acc;
        }
    }
}

// 4. Energies: item = (row, TILE positions). A unit of work is one attention channel a and
// QUAD consecutive positions: the folded location conv slides over them, so each weight and
// each window value is loaded once per QUAD products. Each (position, channel) term goes to
// shared memory, then one warp per position sums them in a fixed order (deterministic).
__device__ void phase_energy(const StepParams& p, const Step& s, float* smem) {
    const i64 T = p.T, A = p.A, K = p.K, pad = K / 2, tiles = (T + TILE - 1) / TILE, span = TILE + K - 1;
    float* win = smem + DATA;        // (2, span): weights and cumulative weights around the tile
    float* pq = win + 2 * span;      // (A)
    float* v = pq + A;               // (A)
    float* terms = v + A;            // (TILE, A): v[a] * tanh(...) per position and channel
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (i64 item = blockIdx.x; item < p.B * tiles; item += gridDim.x) {
        const i64 b = item / tiles, t0 = (item % tiles) * TILE;
        const int L = row_length(p, b, smem);
        if (t0 >= L) continue;  // uniform across the block
        for (i64 i = threadIdx.x; i < 2 * span; i += THREADS) {
            const i64 c = i / span, t = t0 - pad + i % span;
            win[i] = (t >= 0 && t < T) ? s.in[c == 0 ? AW : AWC][b * T + t] : 0.f;
        }
#if FOLD_QUERY
        for (i64 a = warp; a < A; a += WARPS) {
            const float q = query_dot(p, s.out[AH], a, b);
            if (lane == 0) pq[a] = q;
        }
        for (i64 a = threadIdx.x; a < A; a += THREADS) v[a] = ldh(p.v + a);
#else
        for (i64 a = threadIdx.x; a < A; a += THREADS) {
            pq[a] = p.pq[b * A + a];
            v[a] = ldh(p.v + a);
        }
#endif
        __syncthreads();
        for (i64 u = threadIdx.x; u < A * (TILE / QUAD); u += THREADS) {
            const i64 a = u % A, tl = (u / A) * QUAD;
            const half_t* la = p.loc + a * 2 * K;
            float acc[QUAD];
#pragma unroll
            for (int j = 0; j < QUAD; ++j) acc[j] = 0.f;
            for (i64 c = 0; c < 2; ++c) {
                const float* x = win + c * span + tl;
                float r[QUAD];
#pragma unroll
                for (int j = 0; j < QUAD - 1; ++j) r[j] = x[j];
                INNER_LOOP
                for (i64 k = 0; k < K; ++k) {
                    r[QUAD - 1] = x[k + QUAD - 1];
                    const float w = ldh(la + c * K + k);
#pragma unroll
                    for (int j = 0; j < QUAD; ++j) acc[j] += w * r[j];
#pragma unroll
                    for (int j = 0; j < QUAD - 1; ++j) r[j] = r[j + 1];
                }
            }
#pragma unroll
            for (int j = 0; j < QUAD; ++j) {
                const i64 t = t0 + tl + j;
                terms[(tl + j) * A + a] = t < L ? v[a] * tanhf(pq[a] + acc[j] + p.processed[(b * T + t) * A + a]) : 0.f;
            }
        }
        __syncthreads();
        for (i64 tl = warp; tl < TILE; tl += WARPS) {
            float sum = 0.f;
            for (i64 a = lane; a < A; a += 32) sum += terms[tl * A + a];
            sum = warp_sum(sum);
            const i64 t = t0 + tl;
            if (lane == 0 && t < L) p.energy[b * T + t] = p.mask[b * T + t] ? -INFINITY : sum;
        }
        __syncthreads();
    }
}

// 5. Softmax over [0, L) and context: item = (row, CTX_CH encoder channels); the block's
// THREADS / CTX_CH thread groups each sum every (THREADS / CTX_CH)-th position.
__device__ void phase_context(const StepParams& p, const Step& s, float* smem) {
    const i64 T = p.T, E = p.E, chunks = (E + CTX_CH - 1) / CTX_CH, groups = THREADS / CTX_CH;
    float* w = smem + DATA;  // (T)
    float* part = w + T;     // (THREADS)
    for (i64 item = blockIdx.x; item < p.B * chunks; item += gridDim.x) {
        const i64 b = item / chunks, chunk = item % chunks;
        const int L = row_length(p, b, smem);
        float top = -INFINITY;
        for (i64 t = threadIdx.x; t < L; t += THREADS) top = fmaxf(top, p.energy[b * T + t]);
        top = block_max(top, smem);
        float total = 0.f;
        for (i64 t = threadIdx.x; t < L; t += THREADS) {
            const float x = p.energy[b * T + t] == -INFINITY ? 0.f : expf(p.energy[b * T + t] - top);
            w[t] = x;
            total += x;
        }
        total = block_sum(total, smem);  // its barriers also publish w[]
        const float inv = total > 0.f ? 1.f / total : 0.f;
        if (chunk == 0) {
            for (i64 t = threadIdx.x; t < T; t += THREADS) {
                const float x = t < L ? w[t] * inv : 0.f;
                s.out[AW][b * T + t] = x;
                s.out[AWC][b * T + t] = s.in[AWC][b * T + t] + x;
            }
        }
        const i64 c = threadIdx.x % CTX_CH, g = threadIdx.x / CTX_CH, e = chunk * CTX_CH + c;
        float acc = 0.f;
        if (e < E)
            for (i64 t = g; t < L; t += groups) acc += w[t] * p.memory[(b * T + t) * E + e];
        part[threadIdx.x] = acc;
        __syncthreads();
        if (g == 0 && e < E) {
            for (i64 k = 1; k < groups; ++k) acc += part[k * CTX_CH + c];
            s.out[CTX][b * E + e] = acc * inv;
        }
        __syncthreads();
    }
}

// 7. Projection and gate: one warp per output row of [mel rows | gate rows] over [dh | ctx].
__device__ void phase_project(const StepParams& p, const Step& s) {
    const i64 Hd = p.Hd, E = p.E, K = Hd + E, n_mel = p.r * p.n_mel, n_out = n_mel + p.r;
    const i64 nw = (i64)gridDim.x * WARPS;
    const int lane = threadIdx.x % 32;
    for (i64 o = (i64)blockIdx.x * WARPS + threadIdx.x / 32; o < n_out; o += nw) {
        const half_t* wo = p.out_w + o * K;
        for (i64 b = 0; b < p.B; ++b) {
            float acc = 0.f;
            for (i64 c = lane; c < K / 8; c += 32) {
                const i64 k = c * 8;
                float w[8];
                load8(wo + k, w);
                const float* x = k < Hd ? s.out[DH] + b * Hd + k : s.out[CTX] + b * E + (k - Hd);
#pragma unroll
                for (int e = 0; e < 8; ++e) acc += w[e] * x[e];
            }
            acc = warp_sum(acc) + p.out_b[o];
            if (lane == 0) {
                if (o < n_mel) s.mel[b * n_mel + o] = acc;
                else s.gate[b * p.r + (o - n_mel)] = acc;
            }
        }
    }
}

__device__ __forceinline__ void phase_att_lstm(const StepParams& p, const Step& s) {
    phase_lstm(p, p.att_w, p.att_b, p.Ha, p.x_pre, p.P, s.in[CTX], p.E, s.in[AH], s.in[AC], s.out[AH], s.out[AC]);
}

__device__ __forceinline__ void phase_dec_lstm(const StepParams& p, const Step& s) {
    phase_lstm(p, p.dec_w, p.dec_b, p.Hd, s.out[AH], p.Ha, s.out[CTX], p.E, s.in[DH], s.in[DC], s.out[DH], s.out[DC]);
}

// Whether every row's gate has fired by step s (every block computes the same answer).
__device__ bool all_done(const StepParams& p, const Step& s) {
    int done = 1;
    for (i64 b = threadIdx.x; b < p.B; b += THREADS) {
        int fired = p.row_done[b];
        for (i64 j = 0; j < p.r; ++j) fired |= (double)s.gate[b * p.r + j] > p.gate_logit;
        p.row_done[b] = fired;  // every block writes the same value
        done &= fired;
    }
    return __syncthreads_and(done) != 0;
}

extern "C" {

__global__ void __launch_bounds__(THREADS) k_prenet(StepParams p) {
    DYNAMIC_SMEM(smem);
    phase_prenet(p, step_of(p, 0), smem);
}

__global__ void __launch_bounds__(THREADS) k_att_lstm(StepParams p) { phase_att_lstm(p, step_of(p, 0)); }

__global__ void __launch_bounds__(THREADS) k_query(StepParams p) { phase_query(p, step_of(p, 0)); }

__global__ void __launch_bounds__(THREADS) k_energy(StepParams p) {
    DYNAMIC_SMEM(smem);
    phase_energy(p, step_of(p, 0), smem);
}

__global__ void __launch_bounds__(THREADS) k_context(StepParams p) {
    DYNAMIC_SMEM(smem);
    phase_context(p, step_of(p, 0), smem);
}

__global__ void __launch_bounds__(THREADS) k_dec_lstm(StepParams p) { phase_dec_lstm(p, step_of(p, 0)); }

__global__ void __launch_bounds__(THREADS) k_project(StepParams p) { phase_project(p, step_of(p, 0)); }

// Every phase of p.steps steps in one launch; step s reads parity s % 2 and the frames
// step s - 1 wrote. With stop_on_gate it returns after the step where every row is done.
__global__ void FUSED_BOUNDS k_fused(StepParams p) {
    DYNAMIC_SMEM(smem);
    i64 s = 0;
    for (; s < p.steps; ++s) {
        const Step st = step_of(p, s);
        phase_prenet(p, st, smem);
        grid_barrier(p.barrier);
        phase_att_lstm(p, st);
        grid_barrier(p.barrier);
#if !FOLD_QUERY
        phase_query(p, st);
        grid_barrier(p.barrier);
#endif
        phase_energy(p, st, smem);
        grid_barrier(p.barrier);
        phase_context(p, st, smem);
        grid_barrier(p.barrier);
        phase_dec_lstm(p, st);
        grid_barrier(p.barrier);
        phase_project(p, st);
        if (s + 1 < p.steps || p.stop_on_gate) grid_barrier(p.barrier);
        if (p.stop_on_gate && all_done(p, st)) {
            ++s;
            break;
        }
    }
    if (blockIdx.x == 0 && threadIdx.x == 0 && p.steps_done) *p.steps_done = (int)s;
}

}  // extern "C"
