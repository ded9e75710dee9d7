/* fastnn's thread team: the one threading mechanism of the compiled core (pthreads, no OpenMP).

   A job is a number of parts; the calling thread and up to threads - 1 workers take parts one at a time
   (a compare-and-swap on one ticket) until none is left, and the call returns when every part is done.
   Which thread runs which part does not matter: the parts are fixed by the shapes, so any number of
   threads computes the same numbers.  A worker that wakes late finds no part left and goes back to
   sleep; it never holds anyone up.  The training epoch is a job too: its parts are the team's roles
   (_epoch.pxi), which share the products' parts through event counters of their own.

   Waiting (a worker for a job, a thread for parts to finish) spins a few tens of microseconds, yields the
   CPU for a few hundred more, then sleeps on a futex; the thread that changes the counter wakes sleepers
   only when there are any.  When the latest job has more threads than the CPUs the process may use, waits
   spin only briefly and then sleep, so that a waiting thread does not take the CPU from the one it waits
   for.

   fork: the child has none of the parent's workers.  A pthread_atfork child handler forgets them (and
   any job the parent was running in another thread); the child's first job starts new ones.  Workers
   block every signal, so that Ctrl-C reaches Python's main thread.

   Ctrl-C: a compiled call that runs long (an epoch) can watch for SIGINT: ``fnn_watch_sigint`` installs a
   handler that sets ``fnn_interrupted`` and calls Python's own handler, so that Python still raises
   KeyboardInterrupt when the call returns; the epoch checks the flag between batches. */

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

#define FNN_MAX_THREADS 256  /* the slots fit the ticket's 8 bits of helpers */

/* The x86-64 level this copy of the core was compiled for, and every instruction-set extension the compiler
   may use in it, from the compiler's own macros.  fastnn._kernels reads the marker from the file (without
   running any of the core's code) and loads a copy only on a CPU that has all of them: a build never dies
   of an illegal instruction, whatever FASTNN_MARCH named (-march=sandybridge adds AVX to x86-64-v2). */
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512CD__) && defined(__AVX512DQ__) \
    && defined(__AVX512VL__)
#define FNN_LEVEL_STR "x86-64-v4"
#elif defined(__AVX2__) && defined(__FMA__) && defined(__BMI2__)
#define FNN_LEVEL_STR "x86-64-v3"
#elif defined(__SSE4_2__) && defined(__POPCNT__)
#define FNN_LEVEL_STR "x86-64-v2"
#elif defined(__x86_64__)
#define FNN_LEVEL_STR "x86-64"
#else
#define FNN_LEVEL_STR "generic"
#endif

#ifdef __SSE3__
#define FNN_F_SSE3 "sse3,"
#else
#define FNN_F_SSE3 ""
#endif
#ifdef __SSSE3__
#define FNN_F_SSSE3 "ssse3,"
#else
#define FNN_F_SSSE3 ""
#endif
#ifdef __SSE4_1__
#define FNN_F_SSE41 "sse4.1,"
#else
#define FNN_F_SSE41 ""
#endif
#ifdef __SSE4_2__
#define FNN_F_SSE42 "sse4.2,"
#else
#define FNN_F_SSE42 ""
#endif
#ifdef __POPCNT__
#define FNN_F_POPCNT "popcnt,"
#else
#define FNN_F_POPCNT ""
#endif
#ifdef __AVX__
#define FNN_F_AVX "avx,"
#else
#define FNN_F_AVX ""
#endif
#ifdef __AVX2__
#define FNN_F_AVX2 "avx2,"
#else
#define FNN_F_AVX2 ""
#endif
#ifdef __FMA__
#define FNN_F_FMA "fma,"
#else
#define FNN_F_FMA ""
#endif
#ifdef __FMA4__
#define FNN_F_FMA4 "fma4,"
#else
#define FNN_F_FMA4 ""
#endif
#ifdef __F16C__
#define FNN_F_F16C "f16c,"
#else
#define FNN_F_F16C ""
#endif
#ifdef __BMI__
#define FNN_F_BMI "bmi,"
#else
#define FNN_F_BMI ""
#endif
#ifdef __BMI2__
#define FNN_F_BMI2 "bmi2,"
#else
#define FNN_F_BMI2 ""
#endif
#ifdef __LZCNT__
#define FNN_F_LZCNT "lzcnt,"
#else
#define FNN_F_LZCNT ""
#endif
#ifdef __MOVBE__
#define FNN_F_MOVBE "movbe,"
#else
#define FNN_F_MOVBE ""
#endif
#ifdef __AVX512F__
#define FNN_F_AVX512F "avx512f,"
#else
#define FNN_F_AVX512F ""
#endif
#ifdef __AVX512BW__
#define FNN_F_AVX512BW "avx512bw,"
#else
#define FNN_F_AVX512BW ""
#endif
#ifdef __AVX512CD__
#define FNN_F_AVX512CD "avx512cd,"
#else
#define FNN_F_AVX512CD ""
#endif
#ifdef __AVX512DQ__
#define FNN_F_AVX512DQ "avx512dq,"
#else
#define FNN_F_AVX512DQ ""
#endif
#ifdef __AVX512VL__
#define FNN_F_AVX512VL "avx512vl,"
#else
#define FNN_F_AVX512VL ""
#endif
#ifdef __AVX512VNNI__
#define FNN_F_AVX512VNNI "avx512vnni,"
#else
#define FNN_F_AVX512VNNI ""
#endif
#ifdef __AVX512BF16__
#define FNN_F_AVX512BF16 "avx512bf16,"
#else
#define FNN_F_AVX512BF16 ""
#endif
#ifdef __AVX512VBMI__
#define FNN_F_AVX512VBMI "avx512vbmi,"
#else
#define FNN_F_AVX512VBMI ""
#endif
#ifdef __AVX512VBMI2__
#define FNN_F_AVX512VBMI2 "avx512vbmi2,"
#else
#define FNN_F_AVX512VBMI2 ""
#endif
#ifdef __AVX512IFMA__
#define FNN_F_AVX512IFMA "avx512ifma,"
#else
#define FNN_F_AVX512IFMA ""
#endif
#ifdef __AVX512BITALG__
#define FNN_F_AVX512BITALG "avx512bitalg,"
#else
#define FNN_F_AVX512BITALG ""
#endif
#ifdef __AVX512VPOPCNTDQ__
#define FNN_F_AVX512VPOPCNTDQ "avx512vpopcntdq,"
#else
#define FNN_F_AVX512VPOPCNTDQ ""
#endif
#ifdef __AVX512FP16__
#define FNN_F_AVX512FP16 "avx512fp16,"
#else
#define FNN_F_AVX512FP16 ""
#endif
#ifdef __GFNI__
#define FNN_F_GFNI "gfni,"
#else
#define FNN_F_GFNI ""
#endif
#ifdef __VAES__
#define FNN_F_VAES "vaes,"
#else
#define FNN_F_VAES ""
#endif
#ifdef __VPCLMULQDQ__
#define FNN_F_VPCLMULQDQ "vpclmulqdq,"
#else
#define FNN_F_VPCLMULQDQ ""
#endif
#ifdef __SSE4A__
#define FNN_F_SSE4A "sse4a,"
#else
#define FNN_F_SSE4A ""
#endif
#ifdef __XOP__
#define FNN_F_XOP "xop,"
#else
#define FNN_F_XOP ""
#endif
#define FNN_FEATURES FNN_F_SSE3 FNN_F_SSSE3 FNN_F_SSE41 FNN_F_SSE42 FNN_F_POPCNT FNN_F_AVX FNN_F_AVX2 FNN_F_FMA \
    FNN_F_FMA4 FNN_F_F16C FNN_F_BMI FNN_F_BMI2 FNN_F_LZCNT FNN_F_MOVBE FNN_F_AVX512F FNN_F_AVX512BW FNN_F_AVX512CD \
    FNN_F_AVX512DQ FNN_F_AVX512VL FNN_F_AVX512VNNI FNN_F_AVX512BF16 FNN_F_AVX512VBMI FNN_F_AVX512VBMI2 \
    FNN_F_AVX512IFMA FNN_F_AVX512BITALG FNN_F_AVX512VPOPCNTDQ FNN_F_AVX512FP16 FNN_F_GFNI FNN_F_VAES \
    FNN_F_VPCLMULQDQ FNN_F_SSE4A FNN_F_XOP

static const char* FNN_LEVEL = FNN_LEVEL_STR;
/* The same, findable in the file's bytes: fastnn._kernels reads it before it loads the file. */
__attribute__((used)) static const char fnn_level_marker[] =
    "fastnn-core-level:" FNN_LEVEL_STR ";features:" FNN_FEATURES ";";

static inline void fnn_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static inline double fnn_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------ event counters */

/* A 32-bit counter that only grows (modulo 2^32), and that threads wait to reach. */
typedef struct {
    uint32_t value;
    int32_t sleepers;
    char pad[56];
} fnn_event_t;

static inline int fnn_reached(uint32_t value, uint32_t target) { return (int32_t)(value - target) >= 0; }

static inline uint32_t fnn_event_get(fnn_event_t* e) { return __atomic_load_n(&e->value, __ATOMIC_ACQUIRE); }

static inline void fnn_event_wake(fnn_event_t* e) {
    if (__atomic_load_n(&e->sleepers, __ATOMIC_SEQ_CST)) {
#ifdef __linux__
        syscall(SYS_futex, &e->value, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#endif
    }
}

/* value += n (release: everything written before is seen by whoever sees the new value). */
static inline void fnn_event_add(fnn_event_t* e, uint32_t n) {
    __atomic_add_fetch(&e->value, n, __ATOMIC_SEQ_CST);
    fnn_event_wake(e);
}

/* value = v, for a counter with a single writer whose new value is at least the old one. */
static inline void fnn_event_set(fnn_event_t* e, uint32_t v) {
    __atomic_store_n(&e->value, v, __ATOMIC_SEQ_CST);
    fnn_event_wake(e);
}

/* Wait until the counter reaches target: ``spin`` pauses, then up to ``yield_s`` seconds of sched_yield (for
   ever when it is negative), then sleep on the futex.  Returns the seconds waited when ``timed`` (0 otherwise: no clock is read when the
   counter is already there).  The pauses are kept short: in a virtual machine a long run of them makes the
   hypervisor take the CPU away (pause-loop exiting), and processes that spun 300 us ran a whole CNN epoch
   1.5x slower; yielding costs a system call each time but keeps the thread ready. */
static double fnn_event_wait(fnn_event_t* e, uint32_t target, long spin, double yield_s, int timed) {
    uint32_t v;
    double t0, now;
    long i;
    if (fnn_reached(__atomic_load_n(&e->value, __ATOMIC_ACQUIRE), target))
        return 0.0;
    t0 = (timed || yield_s > 0) ? fnn_now() : 0.0;
    for (i = 0; i < spin; i++) {
        fnn_pause();
        if (fnn_reached(__atomic_load_n(&e->value, __ATOMIC_ACQUIRE), target))
            return timed ? fnn_now() - t0 : 0.0;
    }
    if (yield_s != 0) {  /* < 0: yield until the counter is there, never sleep */
        do {
            sched_yield();
            if (fnn_reached(__atomic_load_n(&e->value, __ATOMIC_ACQUIRE), target))
                return timed ? fnn_now() - t0 : 0.0;
            now = yield_s > 0 ? fnn_now() : t0;
        } while (yield_s < 0 || now - t0 < yield_s);
    }
    __atomic_add_fetch(&e->sleepers, 1, __ATOMIC_SEQ_CST);
    while (!fnn_reached(v = __atomic_load_n(&e->value, __ATOMIC_SEQ_CST), target)) {
#ifdef __linux__
        syscall(SYS_futex, &e->value, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
#else
        sched_yield();
#endif
    }
    __atomic_sub_fetch(&e->sleepers, 1, __ATOMIC_SEQ_CST);
    return timed ? fnn_now() - t0 : 0.0;
}

static inline int fnn_load_int(int* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void fnn_store_int(int* p, int v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

/* Take the next index below ``limit`` from a counter shared by the threads (never past the limit). */
static inline int fnn_claim(uint32_t* counter, uint32_t limit, uint32_t* index) {
    uint32_t c = __atomic_load_n(counter, __ATOMIC_ACQUIRE);
    while ((int32_t)(c - limit) < 0) {
        if (__atomic_compare_exchange_n(counter, &c, c + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            *index = c;
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------- the team */

/* A job's part function: part ``part``, run by the thread in slot ``slot`` (0: the caller, 1...: the
   workers it called; at most one thread per slot at a time, so a slot can own a scratch block). */
typedef void (*fnn_part_fn)(void* arg, uint32_t part, int slot);

typedef struct {
    fnn_event_t go;          /* bumped to call this worker to the current job */
} fnn_worker_t;

struct fnn_team_s {
    pthread_mutex_t lock;    /* worker creation */
    int owned;               /* 1 while a caller runs a job (others run theirs alone) */
    int n_workers;           /* workers started in this process */
    int size;                /* the team size in use (threads, the caller included) */
    int cpus;                /* CPUs the process may use (set from Python: affinity and quota) */
    int active;              /* threads of the latest job (its caller included) */
    long spin;               /* pauses a waiting thread spins before it yields */
    long spin_oversubscribed;
    double yield_s;          /* then seconds it yields before it sleeps (none when oversubscribed) */
    double pauses_per_us;
    /* the current job: written by its caller before it publishes the ticket */
    fnn_part_fn fn;
    void* arg;
    uint64_t ticket;         /* (parts << 40) | (helpers << 32) | next part */
    char pad0[64];
    fnn_event_t done;        /* parts finished, over every job */
    fnn_worker_t workers[FNN_MAX_THREADS];
    pthread_t threads[FNN_MAX_THREADS];
    int started;             /* pthread_atfork registered */
    unsigned long jobs;      /* jobs run with helpers (a statistic for tests) */
};
static struct fnn_team_s fnn_team = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 1, 1, 1, 2000, 200, 300e-6, 0.0};

static volatile sig_atomic_t fnn_interrupted = 0;
static struct sigaction fnn_old_sigint;  /* the SIGINT action a watched call replaced */
static void fnn_on_sigint(int sig, siginfo_t* info, void* context);

/* Pauses for a wait: long enough to cover a short gap between two pieces of work, much shorter than a
   scheduler time slice; shorter when the latest job ran more threads than the CPUs the process may use
   (a job of two parts keeps spinning in a team of eight). */
static inline int fnn_oversubscribed(void) {
    return __atomic_load_n(&fnn_team.active, __ATOMIC_RELAXED) > fnn_team.cpus;
}
static inline long fnn_spin(void) { return fnn_oversubscribed() ? fnn_team.spin_oversubscribed : fnn_team.spin; }
static inline double fnn_yield(void) { return fnn_oversubscribed() ? 0.0 : fnn_team.yield_s; }

/* Run the parts of the current job that are left, as the thread of ``slot``; return the parts it ran.
   A worker takes parts only of a job that called at least ``slot`` workers. */
static uint32_t fnn_team_work(int slot) {
    uint64_t t;
    uint32_t ran = 0, parts, next;
    int helpers;
    fnn_part_fn fn;
    void* arg;
    for (;;) {
        t = __atomic_load_n(&fnn_team.ticket, __ATOMIC_ACQUIRE);
        parts = (uint32_t)(t >> 40);
        helpers = (int)((t >> 32) & 0xFF);
        next = (uint32_t)t;
        if (next >= parts || slot > helpers)
            return ran;
        if (!__atomic_compare_exchange_n(&fnn_team.ticket, &t, t + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            continue;
        /* A part was claimed, so its job is not finished and its caller has not moved on: the job's
           function and argument are those of this ticket. */
        fn = __atomic_load_n(&fnn_team.fn, __ATOMIC_ACQUIRE);
        arg = __atomic_load_n(&fnn_team.arg, __ATOMIC_ACQUIRE);
        fn(arg, next, slot);
        fnn_event_add(&fnn_team.done, 1);
        ran++;
    }
}

static void* fnn_worker_main(void* p) {
    int w = (int)(intptr_t)p;
    fnn_worker_t* me = &fnn_team.workers[w];
    uint32_t seen = 0;  /* ``go`` was 0 when this thread was created: a call made before it ran is not missed */
    for (;;) {
        fnn_event_wait(&me->go, seen + 1, fnn_spin(), fnn_yield(), 0);
        seen = fnn_event_get(&me->go);
        fnn_team_work(w + 1);
    }
    return NULL;
}

/* Start workers until there are ``n`` (fewer when the system refuses a thread); return how many there are. */
static int fnn_team_grow(int n) {
    sigset_t all, old;
    pthread_attr_t attr;
    int w;
    if (n > FNN_MAX_THREADS - 1)
        n = FNN_MAX_THREADS - 1;
    if (__atomic_load_n(&fnn_team.n_workers, __ATOMIC_ACQUIRE) >= n)
        return fnn_team.n_workers;
    pthread_mutex_lock(&fnn_team.lock);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);  /* workers inherit it: signals go to Python's threads */
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (w = fnn_team.n_workers; w < n; w++) {
        memset(&fnn_team.workers[w], 0, sizeof(fnn_worker_t));
        if (pthread_create(&fnn_team.threads[w], &attr, fnn_worker_main, (void*)(intptr_t)w) != 0)
            break;
        __atomic_store_n(&fnn_team.n_workers, w + 1, __ATOMIC_RELEASE);
    }
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_mutex_unlock(&fnn_team.lock);
    return fnn_team.n_workers;
}

/* Run fn(arg, p, slot) for every p in [0, parts) on up to ``threads`` threads, the caller included (slots
   0 to threads - 1); return when all are done.  When another caller owns the team (another Python thread, or a part of a job that
   starts a job of its own), this caller runs its parts alone: the same parts, so the same numbers. */
static void fnn_team_run(fnn_part_fn fn, void* arg, uint32_t parts, int threads) {
    uint32_t p, target;
    int helpers, w, expected = 0;
    if (parts == 0)
        return;
    if (parts > (1u << 24) - 1)
        threads = 1;
    if (threads > (int)parts)
        threads = (int)parts;
    if (threads <= 1 || !__atomic_compare_exchange_n(&fnn_team.owned, &expected, 1, 0, __ATOMIC_ACQUIRE,
                                                     __ATOMIC_RELAXED)) {
        for (p = 0; p < parts; p++)
            fn(arg, p, 0);
        return;
    }
    helpers = fnn_team_grow(threads - 1);
    if (helpers > threads - 1)
        helpers = threads - 1;
    __atomic_store_n(&fnn_team.active, helpers + 1, __ATOMIC_RELAXED);
    target = fnn_event_get(&fnn_team.done) + parts;
    __atomic_store_n(&fnn_team.fn, fn, __ATOMIC_RELEASE);
    __atomic_store_n(&fnn_team.arg, arg, __ATOMIC_RELEASE);
    __atomic_store_n(&fnn_team.ticket, ((uint64_t)parts << 40) | ((uint64_t)helpers << 32), __ATOMIC_RELEASE);
    for (w = 0; w < helpers; w++)
        fnn_event_add(&fnn_team.workers[w].go, 1);
    fnn_team.jobs++;
    fnn_team_work(0);
    fnn_event_wait(&fnn_team.done, target, fnn_spin(), fnn_yield(), 0);
    __atomic_store_n(&fnn_team.owned, 0, __ATOMIC_RELEASE);
}

/* In a child of fork(): none of the parent's workers exist here; forget them, and any job the parent was
   running in another thread.  The child's first job starts new workers. */
static void fnn_team_after_fork_child(void) {
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    fnn_team.lock = fresh;
    fnn_team.owned = 0;
    fnn_team.n_workers = 0;
    fnn_team.ticket = 0;
    memset(&fnn_team.done, 0, sizeof(fnn_event_t));
    fnn_team.jobs = 0;
    fnn_interrupted = 0;
    /* forked by another thread while a call watched SIGINT: the child is in no such call, so Python's own
       handler goes back in place (the child's first watched call would otherwise save ours as "Python's") */
    struct sigaction now;
    if (sigaction(SIGINT, NULL, &now) == 0 && (now.sa_flags & SA_SIGINFO) && now.sa_sigaction == fnn_on_sigint)
        sigaction(SIGINT, &fnn_old_sigint, NULL);
}

/* Once, when the core is loaded: the fork handler and how many pauses make a microsecond here. */
static void fnn_team_init(double spin_us, double yield_us, double spin_oversubscribed_us) {
    double t0, t1;
    long i, n = 20000;
    if (!fnn_team.started) {
        pthread_atfork(NULL, NULL, fnn_team_after_fork_child);
        fnn_team.started = 1;
        t0 = fnn_now();
        for (i = 0; i < n; i++)
            fnn_pause();
        t1 = fnn_now();
        fnn_team.pauses_per_us = t1 > t0 ? n / ((t1 - t0) * 1e6) : 100.0;
        if (fnn_team.pauses_per_us < 1.0)
            fnn_team.pauses_per_us = 1.0;
    }
    fnn_team.spin = (long)(spin_us * fnn_team.pauses_per_us) + 1;
    fnn_team.spin_oversubscribed = (long)(spin_oversubscribed_us * fnn_team.pauses_per_us) + 1;
    fnn_team.yield_s = yield_us * 1e-6;
}

static inline int fnn_get_num_threads(void) { return fnn_team.size; }

static inline int fnn_set_num_threads(int n) {
    int old = fnn_team.size;
    if (n < 1)
        n = 1;
    if (n > FNN_MAX_THREADS)
        n = FNN_MAX_THREADS;
    fnn_team.size = n;
    return old;
}

/* ------------------------------------------------------------------------- Ctrl-C */

static void fnn_on_sigint(int sig, siginfo_t* info, void* context) {
    fnn_interrupted = 1;
    if (fnn_old_sigint.sa_flags & SA_SIGINFO) {
        if (fnn_old_sigint.sa_sigaction)
            fnn_old_sigint.sa_sigaction(sig, info, context);
    } else if (fnn_old_sigint.sa_handler != SIG_DFL && fnn_old_sigint.sa_handler != SIG_IGN) {
        fnn_old_sigint.sa_handler(sig);
    }
}

/* From Python's main thread, before a long call: watch for SIGINT (returns 1), unless SIGINT is ignored or
   left to its default action (returns 0: nothing to watch, Python raises nothing). */
static int fnn_watch_sigint(void) {
    struct sigaction old, mine;
    fnn_interrupted = 0;
    if (sigaction(SIGINT, NULL, &old) != 0)
        return 0;
    if ((old.sa_flags & SA_SIGINFO) && old.sa_sigaction == fnn_on_sigint)
        return 1;  /* already watching (a child forked during a watched call): keep the saved handler */
    if (!(old.sa_flags & SA_SIGINFO) && (old.sa_handler == SIG_DFL || old.sa_handler == SIG_IGN))
        return 0;
    fnn_old_sigint = old;
    memset(&mine, 0, sizeof mine);
    mine.sa_sigaction = fnn_on_sigint;
    mine.sa_mask = old.sa_mask;
    mine.sa_flags = (old.sa_flags | SA_SIGINFO) & ~SA_RESETHAND;
    return sigaction(SIGINT, &mine, NULL) == 0;
}

static void fnn_unwatch_sigint(void) { sigaction(SIGINT, &fnn_old_sigint, NULL); }

/* Tests: raise the flag as a SIGINT would. */
static inline void fnn_set_interrupted(int v) { fnn_interrupted = v; }
static inline int fnn_get_interrupted(void) { return fnn_interrupted; }

/* threadpoolctl finds fastnn's team by these two symbols (fastnn._kernels registers a controller). */
__attribute__((visibility("default"))) int fastnn_get_num_threads(void) { return fnn_team.size; }
__attribute__((visibility("default"))) void fastnn_set_num_threads(int n) { fnn_set_num_threads(n); }
