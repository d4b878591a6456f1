// rtvoice/engine/kernels/decoder_step.cu compiled as C++ and run on the CPU (issue 26).
//
// One host thread per CUDA thread: __syncthreads is a barrier of the block's threads, a warp
// shuffle an exchange through memory between the warp's 32 threads, atomics are GCC atomics.
// Phase kernels run their blocks one after another (their blocks are independent); k_fused
// runs every block at once, so its grid-wide barrier works as on the GPU. Slow, but it is the
// kernel's own code: indexing, strides, reductions and barriers are checked on the CPU.
// Built by tests/cuda_backend/kernel_emulation.py with g++ -DKERNEL_PATH=... and a KernelShape's
// -D defines (TILE, QUAD, CTX_CH, WARP_SCAN; FUSED_MAXREG only changes the GPU's code).

#include <sched.h>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#define RTVOICE_EMULATE 1
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __maxnreg__(n)

struct uint4 { unsigned int x, y, z, w; };
struct Dim { unsigned int x, y, z; };

class Barrier {
  public:
    explicit Barrier(int n) : n_(n) {}
    // A generation word the waiters sleep on with FUTEX_WAIT: woken, they do not queue again on a
    // mutex, as they did behind a condition variable's notify_all.
    void wait() {
        const int gen = __atomic_load_n(&gen_, __ATOMIC_ACQUIRE);
        if (__atomic_add_fetch(&count_, 1, __ATOMIC_ACQ_REL) == n_) {
            __atomic_store_n(&count_, 0, __ATOMIC_RELAXED);
            __atomic_add_fetch(&gen_, 1, __ATOMIC_ACQ_REL);
            syscall(SYS_futex, &gen_, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
        } else {
            while (__atomic_load_n(&gen_, __ATOMIC_ACQUIRE) == gen)
                syscall(SYS_futex, &gen_, FUTEX_WAIT_PRIVATE, gen, nullptr, nullptr, 0);
        }
    }

  private:
    const int n_;
    int count_ = 0;
    int gen_ = 0;
};

struct Block {
    explicit Block(int threads, int smem_floats) : bar(threads), smem(smem_floats, 0.f), xchg(threads, 0.f) {
        for (int w = 0; w < threads / 32; ++w) warps.emplace_back(new Barrier(32));
    }
    ~Block() { for (Barrier* w : warps) delete w; }
    Barrier bar;
    std::vector<Barrier*> warps;
    std::vector<float> smem;
    std::vector<float> xchg;
    int flag = 0;
};

thread_local Dim threadIdx, blockIdx, gridDim;
thread_local Block* emu_block;

inline float* emu_smem() { return emu_block->smem.data(); }
inline void emu_yield() { sched_yield(); }
inline void __syncthreads() { emu_block->bar.wait(); }
inline int __syncthreads_and(int x) {
    Block* b = emu_block;
    b->bar.wait();
    if (threadIdx.x == 0) b->flag = 1;
    b->bar.wait();
    if (!x) __atomic_store_n(&b->flag, 0, __ATOMIC_SEQ_CST);
    b->bar.wait();
    const int r = __atomic_load_n(&b->flag, __ATOMIC_SEQ_CST);
    b->bar.wait();
    return r;
}
inline float __shfl_xor_sync(unsigned int, float v, int offset) {
    Block* b = emu_block;
    const int t = threadIdx.x, lane = t % 32;
    b->xchg[t] = v;
    b->warps[t / 32]->wait();
    const float r = b->xchg[t - lane + (lane ^ offset)];
    b->warps[t / 32]->wait();
    return r;
}
inline unsigned int atomicAdd(unsigned int* a, unsigned int v) { return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST); }
inline unsigned int atomicExch(unsigned int* a, unsigned int v) { return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST); }
inline int atomicMax(int* a, int v) {
    int old = __atomic_load_n(a, __ATOMIC_SEQ_CST);
    while (old < v && !__atomic_compare_exchange_n(a, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    return old;
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
template <typename T> inline T __ldg(const T* p) { return *p; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float emu_h2f(unsigned short h) {
    const unsigned int s = h >> 15, e = (h >> 10) & 31u, m = h & 1023u;
    float v;
    if (e == 0) v = std::ldexp((float)m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = std::ldexp((float)(m | 1024u), (int)e - 25);
    return s ? -v : v;
}

#include KERNEL_PATH

namespace {

using Kernel = void (*)(StepParams);

Kernel find(const std::string& name) {
    if (name == "k_prenet") return k_prenet;
    if (name == "k_att_lstm") return k_att_lstm;
    if (name == "k_query") return k_query;
    if (name == "k_energy") return k_energy;
    if (name == "k_context") return k_context;
    if (name == "k_dec_lstm") return k_dec_lstm;
    if (name == "k_project") return k_project;
    if (name == "k_fused") return k_fused;
    return nullptr;
}

void run_blocks(Kernel kernel, int first, int count, int grid, int smem_floats, const StepParams& p) {
    std::vector<Block*> blocks;
    std::vector<std::thread> threads;
    for (int b = first; b < first + count; ++b) blocks.push_back(new Block(THREADS, smem_floats));
    for (int b = 0; b < count; ++b) {
        for (int t = 0; t < THREADS; ++t) {
            threads.emplace_back([=, &blocks, &p] {
                threadIdx = {(unsigned)t, 0, 0};
                blockIdx = {(unsigned)(first + b), 0, 0};
                gridDim = {(unsigned)grid, 1, 1};
                emu_block = blocks[b];
                kernel(p);
            });
        }
    }
    for (std::thread& t : threads) t.join();
    for (Block* b : blocks) delete b;
}

}  // namespace

extern "C" int emu_launch(const char* name, int grid, int smem_bytes, const StepParams* p) {
    Kernel kernel = find(name);
    if (kernel == nullptr || grid < 1) return 1;
    const int smem_floats = smem_bytes / 4;
    if (std::string(name) == "k_fused") {
        run_blocks(kernel, 0, grid, grid, smem_floats, *p);  // all resident: the grid barrier needs it
    } else {
        for (int b = 0; b < grid; ++b) run_blocks(kernel, b, 1, grid, smem_floats, *p);
    }
    return 0;
}

extern "C" int emu_params_size() { return (int)sizeof(StepParams); }
