/*
 * fakenvml.c: a scripted stand-in for libnvidia-ml.so.1, for tests on machines without an NVIDIA GPU.
 *
 * It is compiled against the nvml.h that go-nvml vendors (with NVML_NO_UNVERSIONED_FUNC_DEFS, as go-nvml does),
 * so every function below is checked against NVIDIA's prototype by the compiler. go-nvml loads it with dlopen
 * through its normal path (nvml.WithLibraryPath) and calls it exactly as it would call the real driver library.
 *
 * Leaving a symbol out: every exported function sits inside `#ifndef FAKE_OMIT_<symbol>`, so building with
 * -DFAKE_OMIT_nvmlDeviceGetMemoryInfo_v2 produces a library without that symbol (an older driver, as far as the
 * caller can tell).
 *
 * Environment (read by the library, not by the caller):
 *   FAKE_NVML_SCRIPT    path of the script below; read at the first nvmlInit* after load or after the last
 *                       nvmlShutdown. Unset: initialise with zero GPUs. Unreadable or malformed: nvmlInit* returns
 *                       NVML_ERROR_UNKNOWN and the reason goes to stderr.
 *   FAKE_NVML_CALL_LOG  path of a file to which every call is appended as "<function>" or "<function> <gpu index>",
 *                       one line per call (nvmlErrorString is not logged).
 *
 * Script: one key=value per line; blank lines and lines starting with '#' are ignored; spaces around key and value
 * are trimmed. Numbers take C syntax (decimal, 0x hex). An unknown key is an error. Library keys:
 *   driver_version=<string>          nvmlSystemGetDriverVersion (default "0.0.0-fake")
 *   nvml_version=<string>            nvmlSystemGetNVMLVersion (default "0.0.0-fake")
 *   cuda_driver_version=<int>        nvmlSystemGetCudaDriverVersion(_v2) (unset: NOT_SUPPORTED)
 *   gpu_count=<n>                    nvmlDeviceGetCount (0..16, default 0)
 *   error.<function>=<code>          <function> returns <code> (number or NVML_ERROR_* name) on every call,
 *                                    e.g. error.nvmlInit_v2=NVML_ERROR_DRIVER_NOT_LOADED
 * Per-GPU keys, prefix gpu.<index>. (index < gpu_count):
 *   uuid, name, serial, vbios_version, pci_bus_id   strings (uuid default GPU-00000000-0000-0000-0000-0000000000NN,
 *                                    name "Fake NVIDIA GPU", pci_bus_id 00000000:NN:00.0 with NN = index+1;
 *                                    serial and vbios_version unset: NOT_SUPPORTED)
 *   lost=1                           every per-device call returns NVML_ERROR_GPU_IS_LOST (the handle is still
 *                                    handed out: the GPU fell off the bus after discovery)
 *   error.<function>=<code>          as above, for calls on this GPU (also nvmlDeviceGetHandleByIndex* by index)
 *   minor_number                     default <index>
 *   memory.total, memory.reserved, memory.used   bytes; used is allocated memory (the v2 meaning). v2 reports
 *                                    free = total-reserved-used; v1 reports the same free and used = reserved+used
 *   utilization.gpu, utilization.memory          percent, nvmlDeviceGetUtilizationRates
 *   encoder.utilization, encoder.sampling_period_us, decoder.utilization, decoder.sampling_period_us
 *   temperature.gpu                  degrees C (nvmlDeviceGetTemperature / GetTemperatureV, sensor GPU)
 *   power.usage_mw, power.enforced_limit_mw, power.management_limit_mw
 *   energy.total_mj                  nvmlDeviceGetTotalEnergyConsumption
 *   energy.mw                        the counter then grows by this power (mW = mJ/s) from the nvmlInit call
 *   clock.graphics, clock.sm, clock.memory, clock.video            MHz, nvmlDeviceGetClockInfo
 *   max_clock.graphics, max_clock.sm, max_clock.memory, max_clock.video   MHz, nvmlDeviceGetMaxClockInfo
 *   pcie.tx_kbps, pcie.rx_kbps, pcie.replay_count
 *   ecc.mode                         0/1 current = pending ECC mode
 *   ecc.volatile.corrected, ecc.volatile.uncorrected, ecc.aggregate.corrected, ecc.aggregate.uncorrected
 *   clocks_event_reasons, supported_clocks_event_reasons           bit masks
 *   mig.current, mig.pending         MIG mode; mig.max_devices (default 0; no MIG device handles are served)
 *   remapped.correctable, remapped.uncorrectable, remapped.pending, remapped.failure
 *   cuda_compute_capability.major, cuda_compute_capability.minor
 *   supported_event_types            bit mask (default Xid|SingleBitEcc|DoubleBitEcc)
 *   xid=<n>[,<n>...]                 XID critical errors delivered, once each, to every event set that registered
 *                                    nvmlEventTypeXidCriticalError for this GPU
 *   samples.<type>=<ts>:<v>[,...]    nvmlDeviceGetSamples (value type unsigned int); <type> is one of power, gpu,
 *                                    memory, encoder, decoder, processor_clock, memory_clock. Samples newer than
 *                                    lastSeenTimeStamp are returned in script order; none: NVML_ERROR_NOT_FOUND
 *   field.<id>=<value>               nvmlDeviceGetFieldValues, unsigned long long for any scope; other ids get
 *                                    NVML_ERROR_NOT_SUPPORTED in their nvmlReturn
 *   gpm.supported=1                  nvmlGpmQueryDeviceSupport reports the GPU supported (else isSupportedDevice 0,
 *                                    and nvmlGpmSampleGet / nvmlGpmMigSampleGet return NOT_SUPPORTED)
 *   gpm.<metric id>=<double>         what nvmlGpmMetricsGet reports for that metric between any two samples of the
 *                                    GPU (or of one of its GPU instances); other ids get NVML_ERROR_NOT_SUPPORTED
 *   process.<j>.pid (required), process.<j>.used_memory (bytes; -1 = NVML_VALUE_NOT_AVAILABLE),
 *   process.<j>.type (compute|graphics|mps, default compute), process.<j>.gpu_instance_id,
 *   process.<j>.compute_instance_id (default 0xFFFFFFFF), and for nvmlDeviceGetProcessUtilization
 *   process.<j>.timestamp (a process without one has no utilization sample), process.<j>.sm_util,
 *   process.<j>.mem_util, process.<j>.enc_util, process.<j>.dec_util
 * Timestamps (samples.*, process.<j>.timestamp) are microseconds since the epoch, or +<us> for an offset from the
 * wall-clock time of the nvmlInit* call that read the script.
 * A numeric value that is not scripted makes its getter return NVML_ERROR_NOT_SUPPORTED (a GPU without that
 * sensor), so a script states exactly what the GPU supports.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nvml.h"

#define MAX_GPUS 16
#define MAX_PROCS 32
#define MAX_SAMPLES 64
#define MAX_XIDS 16
#define MAX_FIELDS 32
#define MAX_GPM 32
#define MAX_GPM_SAMPLES 64
#define MAX_ERRORS 64
#define MAX_EVENT_SETS 8
#define MAX_STR 96
#define FN_MAX 96
#define SAMPLE_TYPES 7
#define NO_INSTANCE 0xFFFFFFFFu

enum proc_type { PROC_COMPUTE, PROC_GRAPHICS, PROC_MPS };

typedef struct {
    int set;
    unsigned long long v;
} opt_u64;

struct proc {
    int defined;
    opt_u64 pid, used_memory, type, gpu_instance_id, compute_instance_id;
    opt_u64 timestamp, sm_util, mem_util, enc_util, dec_util;
};

struct sample {
    unsigned long long ts;
    unsigned int value;
};

struct field {
    unsigned int id;
    unsigned long long value;
};

/* What nvmlGpmMetricsGet reports for one metric id between any two samples of the GPU. */
struct gpm_value {
    unsigned int id;
    double value;
};

struct gpu {
    char uuid[MAX_STR], name[MAX_STR], serial[MAX_STR], vbios[MAX_STR], pci_bus_id[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE];
    int lost;
    opt_u64 minor;
    opt_u64 mem_total, mem_reserved, mem_used;
    opt_u64 util_gpu, util_mem, enc_util, enc_period, dec_util, dec_period;
    opt_u64 temp_gpu;
    opt_u64 power_mw, power_enforced_mw, power_mgmt_mw, energy_mj, energy_mw;
    opt_u64 clock[NVML_CLOCK_COUNT], max_clock[NVML_CLOCK_COUNT];
    opt_u64 pcie_tx, pcie_rx, pcie_replay;
    opt_u64 ecc_mode, ecc[2][2]; /* [nvmlMemoryErrorType_t][nvmlEccCounterType_t] */
    opt_u64 clk_reasons, clk_supported;
    opt_u64 mig_current, mig_pending, mig_max;
    opt_u64 remap_corr, remap_unc, remap_pending, remap_failure;
    opt_u64 cc_major, cc_minor;
    opt_u64 event_types;
    struct proc procs[MAX_PROCS];
    int nprocs;
    struct sample samples[SAMPLE_TYPES][MAX_SAMPLES];
    int nsamples[SAMPLE_TYPES];
    unsigned int xids[MAX_XIDS];
    int nxids;
    struct field fields[MAX_FIELDS];
    int nfields;
    opt_u64 gpm_supported;
    struct gpm_value gpm[MAX_GPM];
    int ngpm;
};

struct error_override {
    int gpu; /* -1: any call of the function */
    char fn[FN_MAX];
    nvmlReturn_t code;
};

/* Handles point into these arrays; they are never freed, so a stale handle is detected, not dereferenced. */
struct nvmlDevice_st {
    int index;
};

struct nvmlGpmSample_st {
    int in_use;
    int gpu;         /* -1 until nvmlGpmSampleGet filled it */
    long long gi;    /* GPU instance of nvmlGpmMigSampleGet, -1 for the whole GPU */
    unsigned long long taken_us;
};

struct nvmlEventSet_st {
    int in_use;
    unsigned long long mask[MAX_GPUS];
    int delivered[MAX_GPUS];
};

struct state {
    char driver_version[MAX_STR], nvml_version[MAX_STR];
    opt_u64 cuda_driver_version;
    unsigned int gpu_count;
    struct gpu gpus[MAX_GPUS];
    struct error_override errors[MAX_ERRORS];
    int nerrors;
    unsigned long long init_time_us;
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond; /* signalled when event sets or the library state change */
static unsigned int g_refcount;
static unsigned long long g_generation; /* bumped on every init from zero and every final shutdown */
static struct state g_state;
static struct nvmlDevice_st g_devices[MAX_GPUS];
static struct nvmlEventSet_st g_sets[MAX_EVENT_SETS];
static struct nvmlGpmSample_st g_gpm_samples[MAX_GPM_SAMPLES];
static FILE *g_call_log;
static int g_call_log_opened;

__attribute__((constructor)) static void fake_constructor(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&g_cond, &attr);
    pthread_condattr_destroy(&attr);
    for (int i = 0; i < MAX_GPUS; i++) {
        g_devices[i].index = i;
    }
}

static void unlock_guard(int *unused)
{
    (void)unused;
    pthread_mutex_unlock(&g_mu);
}

/* Holds g_mu until the enclosing scope returns. */
#define LOCK_SCOPE()                                                                                                  \
    int lock_guard_ __attribute__((cleanup(unlock_guard))) = (pthread_mutex_lock(&g_mu), 0);                          \
    (void)lock_guard_

static unsigned long long now_us(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000ull;
}

static void log_call(const char *fn, int gpu)
{
    if (!g_call_log_opened) {
        g_call_log_opened = 1;
        const char *path = getenv("FAKE_NVML_CALL_LOG");
        if (path != NULL && path[0] != '\0') {
            g_call_log = fopen(path, "a");
            if (g_call_log == NULL) {
                fprintf(stderr, "fakenvml: cannot open call log %s: %s\n", path, strerror(errno));
            }
        }
    }
    if (g_call_log == NULL) {
        return;
    }
    if (gpu >= 0) {
        fprintf(g_call_log, "%s %d\n", fn, gpu);
    } else {
        fprintf(g_call_log, "%s\n", fn);
    }
    fflush(g_call_log);
}

/* ---- return codes ---------------------------------------------------------------------------------------------- */

static const struct {
    nvmlReturn_t code;
    const char *name;
} k_returns[] = {
    {NVML_SUCCESS, "NVML_SUCCESS"},
    {NVML_ERROR_UNINITIALIZED, "NVML_ERROR_UNINITIALIZED"},
    {NVML_ERROR_INVALID_ARGUMENT, "NVML_ERROR_INVALID_ARGUMENT"},
    {NVML_ERROR_NOT_SUPPORTED, "NVML_ERROR_NOT_SUPPORTED"},
    {NVML_ERROR_NO_PERMISSION, "NVML_ERROR_NO_PERMISSION"},
    {NVML_ERROR_ALREADY_INITIALIZED, "NVML_ERROR_ALREADY_INITIALIZED"},
    {NVML_ERROR_NOT_FOUND, "NVML_ERROR_NOT_FOUND"},
    {NVML_ERROR_INSUFFICIENT_SIZE, "NVML_ERROR_INSUFFICIENT_SIZE"},
    {NVML_ERROR_INSUFFICIENT_POWER, "NVML_ERROR_INSUFFICIENT_POWER"},
    {NVML_ERROR_DRIVER_NOT_LOADED, "NVML_ERROR_DRIVER_NOT_LOADED"},
    {NVML_ERROR_TIMEOUT, "NVML_ERROR_TIMEOUT"},
    {NVML_ERROR_IRQ_ISSUE, "NVML_ERROR_IRQ_ISSUE"},
    {NVML_ERROR_LIBRARY_NOT_FOUND, "NVML_ERROR_LIBRARY_NOT_FOUND"},
    {NVML_ERROR_FUNCTION_NOT_FOUND, "NVML_ERROR_FUNCTION_NOT_FOUND"},
    {NVML_ERROR_CORRUPTED_INFOROM, "NVML_ERROR_CORRUPTED_INFOROM"},
    {NVML_ERROR_GPU_IS_LOST, "NVML_ERROR_GPU_IS_LOST"},
    {NVML_ERROR_RESET_REQUIRED, "NVML_ERROR_RESET_REQUIRED"},
    {NVML_ERROR_OPERATING_SYSTEM, "NVML_ERROR_OPERATING_SYSTEM"},
    {NVML_ERROR_LIB_RM_VERSION_MISMATCH, "NVML_ERROR_LIB_RM_VERSION_MISMATCH"},
    {NVML_ERROR_IN_USE, "NVML_ERROR_IN_USE"},
    {NVML_ERROR_MEMORY, "NVML_ERROR_MEMORY"},
    {NVML_ERROR_NO_DATA, "NVML_ERROR_NO_DATA"},
    {NVML_ERROR_VGPU_ECC_NOT_SUPPORTED, "NVML_ERROR_VGPU_ECC_NOT_SUPPORTED"},
    {NVML_ERROR_INSUFFICIENT_RESOURCES, "NVML_ERROR_INSUFFICIENT_RESOURCES"},
    {NVML_ERROR_FREQ_NOT_SUPPORTED, "NVML_ERROR_FREQ_NOT_SUPPORTED"},
    {NVML_ERROR_ARGUMENT_VERSION_MISMATCH, "NVML_ERROR_ARGUMENT_VERSION_MISMATCH"},
    {NVML_ERROR_DEPRECATED, "NVML_ERROR_DEPRECATED"},
    {NVML_ERROR_NOT_READY, "NVML_ERROR_NOT_READY"},
    {NVML_ERROR_GPU_NOT_FOUND, "NVML_ERROR_GPU_NOT_FOUND"},
    {NVML_ERROR_INVALID_STATE, "NVML_ERROR_INVALID_STATE"},
    {NVML_ERROR_RESET_TYPE_NOT_SUPPORTED, "NVML_ERROR_RESET_TYPE_NOT_SUPPORTED"},
    {NVML_ERROR_UNKNOWN, "NVML_ERROR_UNKNOWN"},
};

/* ---- script parsing -------------------------------------------------------------------------------------------- */

#define GPU_U64(key, member) {key, offsetof(struct gpu, member)}

static const struct {
    const char *key;
    size_t offset;
} k_gpu_numbers[] = {
    GPU_U64("minor_number", minor),
    GPU_U64("memory.total", mem_total),
    GPU_U64("energy.mw", energy_mw),
    GPU_U64("gpm.supported", gpm_supported),
    GPU_U64("memory.reserved", mem_reserved),
    GPU_U64("memory.used", mem_used),
    GPU_U64("utilization.gpu", util_gpu),
    GPU_U64("utilization.memory", util_mem),
    GPU_U64("encoder.utilization", enc_util),
    GPU_U64("encoder.sampling_period_us", enc_period),
    GPU_U64("decoder.utilization", dec_util),
    GPU_U64("decoder.sampling_period_us", dec_period),
    GPU_U64("temperature.gpu", temp_gpu),
    GPU_U64("power.usage_mw", power_mw),
    GPU_U64("power.enforced_limit_mw", power_enforced_mw),
    GPU_U64("power.management_limit_mw", power_mgmt_mw),
    GPU_U64("energy.total_mj", energy_mj),
    GPU_U64("clock.graphics", clock[NVML_CLOCK_GRAPHICS]),
    GPU_U64("clock.sm", clock[NVML_CLOCK_SM]),
    GPU_U64("clock.memory", clock[NVML_CLOCK_MEM]),
    GPU_U64("clock.video", clock[NVML_CLOCK_VIDEO]),
    GPU_U64("max_clock.graphics", max_clock[NVML_CLOCK_GRAPHICS]),
    GPU_U64("max_clock.sm", max_clock[NVML_CLOCK_SM]),
    GPU_U64("max_clock.memory", max_clock[NVML_CLOCK_MEM]),
    GPU_U64("max_clock.video", max_clock[NVML_CLOCK_VIDEO]),
    GPU_U64("pcie.tx_kbps", pcie_tx),
    GPU_U64("pcie.rx_kbps", pcie_rx),
    GPU_U64("pcie.replay_count", pcie_replay),
    GPU_U64("ecc.mode", ecc_mode),
    GPU_U64("ecc.volatile.corrected", ecc[NVML_MEMORY_ERROR_TYPE_CORRECTED][NVML_VOLATILE_ECC]),
    GPU_U64("ecc.volatile.uncorrected", ecc[NVML_MEMORY_ERROR_TYPE_UNCORRECTED][NVML_VOLATILE_ECC]),
    GPU_U64("ecc.aggregate.corrected", ecc[NVML_MEMORY_ERROR_TYPE_CORRECTED][NVML_AGGREGATE_ECC]),
    GPU_U64("ecc.aggregate.uncorrected", ecc[NVML_MEMORY_ERROR_TYPE_UNCORRECTED][NVML_AGGREGATE_ECC]),
    GPU_U64("clocks_event_reasons", clk_reasons),
    GPU_U64("supported_clocks_event_reasons", clk_supported),
    GPU_U64("mig.current", mig_current),
    GPU_U64("mig.pending", mig_pending),
    GPU_U64("mig.max_devices", mig_max),
    GPU_U64("remapped.correctable", remap_corr),
    GPU_U64("remapped.uncorrectable", remap_unc),
    GPU_U64("remapped.pending", remap_pending),
    GPU_U64("remapped.failure", remap_failure),
    GPU_U64("cuda_compute_capability.major", cc_major),
    GPU_U64("cuda_compute_capability.minor", cc_minor),
    GPU_U64("supported_event_types", event_types),
};

#define PROC_U64(key, member) {key, offsetof(struct proc, member)}

static const struct {
    const char *key;
    size_t offset;
} k_proc_numbers[] = {
    PROC_U64("pid", pid),
    PROC_U64("used_memory", used_memory),
    PROC_U64("gpu_instance_id", gpu_instance_id),
    PROC_U64("compute_instance_id", compute_instance_id),
    PROC_U64("timestamp", timestamp),
    PROC_U64("sm_util", sm_util),
    PROC_U64("mem_util", mem_util),
    PROC_U64("enc_util", enc_util),
    PROC_U64("dec_util", dec_util),
};

static const char *const k_sample_types[SAMPLE_TYPES] = {
    [NVML_TOTAL_POWER_SAMPLES] = "power",
    [NVML_GPU_UTILIZATION_SAMPLES] = "gpu",
    [NVML_MEMORY_UTILIZATION_SAMPLES] = "memory",
    [NVML_ENC_UTILIZATION_SAMPLES] = "encoder",
    [NVML_DEC_UTILIZATION_SAMPLES] = "decoder",
    [NVML_PROCESSOR_CLK_SAMPLES] = "processor_clock",
    [NVML_MEMORY_CLK_SAMPLES] = "memory_clock",
};

struct parser {
    const char *path;
    int line;
    char err[256];
};

__attribute__((format(printf, 2, 3))) static int parse_fail(struct parser *p, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(p->err, sizeof p->err, "%s:%d: %s", p->path, p->line, msg);
    return -1;
}

/* Parses a whole number, or with allow_relative "+<n>" as an offset from the init time. */
static int parse_number(struct parser *p, const char *s, int allow_relative, unsigned long long *out)
{
    int relative = 0;
    if (allow_relative && s[0] == '+') {
        relative = 1;
        s++;
    }
    if (s[0] == '\0') {
        return parse_fail(p, "empty number");
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno != 0 || *end != '\0') {
        return parse_fail(p, "bad number \"%s\"", s);
    }
    *out = relative ? g_state.init_time_us + v : v;
    return 0;
}

static int parse_opt(struct parser *p, const char *s, opt_u64 *out)
{
    if (parse_number(p, s, 0, &out->v) != 0) {
        return -1;
    }
    out->set = 1;
    return 0;
}

static int parse_string(struct parser *p, const char *s, char *out, size_t size)
{
    if (strlen(s) >= size) {
        return parse_fail(p, "string longer than %zu bytes", size - 1);
    }
    strcpy(out, s);
    return 0;
}

static int parse_return_code(struct parser *p, const char *s, nvmlReturn_t *out)
{
    for (size_t i = 0; i < sizeof k_returns / sizeof k_returns[0]; i++) {
        if (strcmp(s, k_returns[i].name) == 0) {
            *out = k_returns[i].code;
            return 0;
        }
    }
    unsigned long long v;
    if (parse_number(p, s, 0, &v) != 0) {
        return -1;
    }
    *out = (nvmlReturn_t)v;
    return 0;
}

static int add_error(struct parser *p, int gpu, const char *fn, const char *value)
{
    if (g_state.nerrors >= MAX_ERRORS) {
        return parse_fail(p, "more than %d error overrides", MAX_ERRORS);
    }
    struct error_override *e = &g_state.errors[g_state.nerrors];
    if (fn[0] == '\0' || parse_string(p, fn, e->fn, sizeof e->fn) != 0) {
        return parse_fail(p, "bad function name \"%s\"", fn);
    }
    if (parse_return_code(p, value, &e->code) != 0) {
        return -1;
    }
    e->gpu = gpu;
    g_state.nerrors++;
    return 0;
}

static int parse_samples(struct parser *p, struct gpu *g, int type, const char *value)
{
    char buf[4096];
    if (parse_string(p, value, buf, sizeof buf) != 0) {
        return -1;
    }
    g->nsamples[type] = 0;
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(item, ':');
        if (colon == NULL) {
            return parse_fail(p, "sample \"%s\" is not <timestamp>:<value>", item);
        }
        *colon = '\0';
        if (g->nsamples[type] >= MAX_SAMPLES) {
            return parse_fail(p, "more than %d samples", MAX_SAMPLES);
        }
        struct sample *s = &g->samples[type][g->nsamples[type]];
        unsigned long long v;
        if (parse_number(p, item, 1, &s->ts) != 0 || parse_number(p, colon + 1, 0, &v) != 0) {
            return -1;
        }
        s->value = (unsigned int)v;
        g->nsamples[type]++;
    }
    return 0;
}

static int parse_proc_key(struct parser *p, struct gpu *g, const char *rest, const char *value)
{
    char *end;
    unsigned long j = strtoul(rest, &end, 10);
    if (end == rest || *end != '.' || j >= MAX_PROCS) {
        return parse_fail(p, "bad process index in \"process.%s\" (0..%d)", rest, MAX_PROCS - 1);
    }
    const char *key = end + 1;
    struct proc *pr = &g->procs[j];
    pr->defined = 1;
    if ((int)j + 1 > g->nprocs) {
        g->nprocs = (int)j + 1;
    }
    if (strcmp(key, "type") == 0) {
        pr->type.set = 1;
        if (strcmp(value, "compute") == 0) {
            pr->type.v = PROC_COMPUTE;
        } else if (strcmp(value, "graphics") == 0) {
            pr->type.v = PROC_GRAPHICS;
        } else if (strcmp(value, "mps") == 0) {
            pr->type.v = PROC_MPS;
        } else {
            return parse_fail(p, "process type \"%s\" is not compute, graphics or mps", value);
        }
        return 0;
    }
    for (size_t i = 0; i < sizeof k_proc_numbers / sizeof k_proc_numbers[0]; i++) {
        if (strcmp(key, k_proc_numbers[i].key) == 0) {
            opt_u64 *o = (opt_u64 *)((char *)pr + k_proc_numbers[i].offset);
            if (parse_number(p, value, strcmp(key, "timestamp") == 0, &o->v) != 0) {
                return -1;
            }
            o->set = 1;
            return 0;
        }
    }
    return parse_fail(p, "unknown process key \"%s\"", key);
}

static int parse_gpu_key(struct parser *p, int index, const char *key, const char *value)
{
    struct gpu *g = &g_state.gpus[index];
    if (strcmp(key, "uuid") == 0) {
        return parse_string(p, value, g->uuid, sizeof g->uuid);
    }
    if (strcmp(key, "name") == 0) {
        return parse_string(p, value, g->name, sizeof g->name);
    }
    if (strcmp(key, "serial") == 0) {
        return parse_string(p, value, g->serial, NVML_DEVICE_SERIAL_BUFFER_SIZE);
    }
    if (strcmp(key, "vbios_version") == 0) {
        return parse_string(p, value, g->vbios, NVML_DEVICE_VBIOS_VERSION_BUFFER_SIZE);
    }
    if (strcmp(key, "pci_bus_id") == 0) {
        return parse_string(p, value, g->pci_bus_id, sizeof g->pci_bus_id);
    }
    if (strcmp(key, "lost") == 0) {
        unsigned long long v;
        if (parse_number(p, value, 0, &v) != 0) {
            return -1;
        }
        g->lost = v != 0;
        return 0;
    }
    if (strncmp(key, "error.", 6) == 0) {
        return add_error(p, index, key + 6, value);
    }
    if (strcmp(key, "xid") == 0) {
        char buf[512];
        if (parse_string(p, value, buf, sizeof buf) != 0) {
            return -1;
        }
        g->nxids = 0;
        char *save = NULL;
        for (char *item = strtok_r(buf, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
            unsigned long long v;
            if (g->nxids >= MAX_XIDS) {
                return parse_fail(p, "more than %d XIDs", MAX_XIDS);
            }
            if (parse_number(p, item, 0, &v) != 0) {
                return -1;
            }
            g->xids[g->nxids++] = (unsigned int)v;
        }
        return 0;
    }
    if (strncmp(key, "samples.", 8) == 0) {
        for (int t = 0; t < SAMPLE_TYPES; t++) {
            if (strcmp(key + 8, k_sample_types[t]) == 0) {
                return parse_samples(p, g, t, value);
            }
        }
        return parse_fail(p, "unknown sample type \"%s\"", key + 8);
    }
    if (strncmp(key, "field.", 6) == 0) {
        unsigned long long id;
        if (parse_number(p, key + 6, 0, &id) != 0) {
            return -1;
        }
        if (g->nfields >= MAX_FIELDS) {
            return parse_fail(p, "more than %d field values", MAX_FIELDS);
        }
        g->fields[g->nfields].id = (unsigned int)id;
        if (parse_number(p, value, 0, &g->fields[g->nfields].value) != 0) {
            return -1;
        }
        g->nfields++;
        return 0;
    }
    if (strncmp(key, "gpm.", 4) == 0 && strcmp(key, "gpm.supported") != 0) {
        unsigned long long id;
        if (parse_number(p, key + 4, 0, &id) != 0) {
            return -1;
        }
        if (g->ngpm >= MAX_GPM) {
            return parse_fail(p, "more than %d GPM metrics", MAX_GPM);
        }
        char *end = NULL;
        double v = strtod(value, &end);
        if (end == value || *end != '\0') {
            return parse_fail(p, "GPM value \"%s\" is not a number", value);
        }
        g->gpm[g->ngpm].id = (unsigned int)id;
        g->gpm[g->ngpm].value = v;
        g->ngpm++;
        return 0;
    }
    if (strncmp(key, "process.", 8) == 0) {
        return parse_proc_key(p, g, key + 8, value);
    }
    for (size_t i = 0; i < sizeof k_gpu_numbers / sizeof k_gpu_numbers[0]; i++) {
        if (strcmp(key, k_gpu_numbers[i].key) == 0) {
            return parse_opt(p, value, (opt_u64 *)((char *)g + k_gpu_numbers[i].offset));
        }
    }
    return parse_fail(p, "unknown key \"gpu.%d.%s\"", index, key);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n')) {
        s[--n] = '\0';
    }
    return s;
}

static int parse_line(struct parser *p, char *line, int *max_gpu)
{
    char *eq = strchr(line, '=');
    if (eq == NULL) {
        return parse_fail(p, "line is not key=value");
    }
    *eq = '\0';
    const char *key = trim(line);
    const char *value = trim(eq + 1);

    if (strcmp(key, "driver_version") == 0) {
        return parse_string(p, value, g_state.driver_version, NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE);
    }
    if (strcmp(key, "nvml_version") == 0) {
        return parse_string(p, value, g_state.nvml_version, NVML_SYSTEM_NVML_VERSION_BUFFER_SIZE);
    }
    if (strcmp(key, "cuda_driver_version") == 0) {
        return parse_opt(p, value, &g_state.cuda_driver_version);
    }
    if (strcmp(key, "gpu_count") == 0) {
        unsigned long long n;
        if (parse_number(p, value, 0, &n) != 0) {
            return -1;
        }
        if (n > MAX_GPUS) {
            return parse_fail(p, "gpu_count %llu is more than %d", n, MAX_GPUS);
        }
        g_state.gpu_count = (unsigned int)n;
        return 0;
    }
    if (strncmp(key, "error.", 6) == 0) {
        return add_error(p, -1, key + 6, value);
    }
    if (strncmp(key, "gpu.", 4) == 0) {
        char *end;
        unsigned long index = strtoul(key + 4, &end, 10);
        if (end == key + 4 || *end != '.' || index >= MAX_GPUS) {
            return parse_fail(p, "bad GPU index in \"%s\" (0..%d)", key, MAX_GPUS - 1);
        }
        if ((int)index > *max_gpu) {
            *max_gpu = (int)index;
        }
        return parse_gpu_key(p, (int)index, end + 1, value);
    }
    return parse_fail(p, "unknown key \"%s\"", key);
}

static void set_defaults(void)
{
    strcpy(g_state.driver_version, "0.0.0-fake");
    strcpy(g_state.nvml_version, "0.0.0-fake");
    for (int i = 0; i < MAX_GPUS; i++) {
        struct gpu *g = &g_state.gpus[i];
        snprintf(g->uuid, sizeof g->uuid, "GPU-00000000-0000-0000-0000-0000000000%02d", i);
        strcpy(g->name, "Fake NVIDIA GPU");
        snprintf(g->pci_bus_id, sizeof g->pci_bus_id, "00000000:%02X:00.0", i + 1);
        g->minor = (opt_u64){1, (unsigned long long)i};
        g->event_types = (opt_u64){1, nvmlEventTypeXidCriticalError | nvmlEventTypeSingleBitEccError |
                                          nvmlEventTypeDoubleBitEccError};
    }
}

static int validate(struct parser *p, int max_gpu)
{
    p->line = 0;
    if (max_gpu >= (int)g_state.gpu_count) {
        return parse_fail(p, "gpu.%d.* is scripted but gpu_count is %u", max_gpu, g_state.gpu_count);
    }
    for (unsigned int i = 0; i < g_state.gpu_count; i++) {
        struct gpu *g = &g_state.gpus[i];
        unsigned long long taken = g->mem_reserved.v + g->mem_used.v;
        if (g->mem_total.set && taken > g->mem_total.v) {
            return parse_fail(p, "gpu.%u: memory.reserved + memory.used exceed memory.total", i);
        }
        if (!g->mem_total.set && (g->mem_reserved.set || g->mem_used.set)) {
            return parse_fail(p, "gpu.%u: memory.reserved/used need memory.total", i);
        }
        for (int j = 0; j < g->nprocs; j++) {
            if (!g->procs[j].defined || !g->procs[j].pid.set) {
                return parse_fail(p, "gpu.%u.process.%d.pid is missing (processes are numbered from 0)", i, j);
            }
        }
    }
    return 0;
}

/* Loads the script into g_state; on failure returns -1 with the reason in p->err. */
static int load_script(struct parser *p)
{
    memset(&g_state, 0, sizeof g_state);
    g_state.init_time_us = now_us(CLOCK_REALTIME);
    set_defaults();

    const char *path = getenv("FAKE_NVML_SCRIPT");
    p->path = path != NULL ? path : "(no FAKE_NVML_SCRIPT)";
    p->line = 0;
    if (path == NULL || path[0] == '\0') {
        return 0;
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return parse_fail(p, "cannot open: %s", strerror(errno));
    }
    char buf[8192];
    int max_gpu = -1;
    int rc = 0;
    while (fgets(buf, sizeof buf, f) != NULL) {
        p->line++;
        if (strchr(buf, '\n') == NULL && !feof(f)) {
            rc = parse_fail(p, "line longer than %zu bytes", sizeof buf - 2);
            break;
        }
        char *line = trim(buf);
        if (line[0] == '\0' || line[0] == '#') {
            continue;
        }
        if ((rc = parse_line(p, line, &max_gpu)) != 0) {
            break;
        }
    }
    fclose(f);
    if (rc == 0) {
        rc = validate(p, max_gpu);
    }
    return rc;
}

/* ---- call helpers ---------------------------------------------------------------------------------------------- */

static nvmlReturn_t error_override(const char *fn, int gpu)
{
    for (int i = 0; i < g_state.nerrors; i++) {
        if (g_state.errors[i].gpu == gpu && strcmp(g_state.errors[i].fn, fn) == 0) {
            return g_state.errors[i].code;
        }
    }
    if (gpu >= 0) {
        return error_override(fn, -1);
    }
    return NVML_SUCCESS;
}

static int device_index(nvmlDevice_t device)
{
    struct nvmlDevice_st *h = device.handle;
    if (h < g_devices || h >= g_devices + MAX_GPUS || (size_t)((char *)h - (char *)g_devices) % sizeof *h != 0) {
        return -1;
    }
    return (int)(h - g_devices) < (int)g_state.gpu_count ? (int)(h - g_devices) : -1;
}

static nvmlReturn_t library_enter(const char *fn)
{
    log_call(fn, -1);
    if (g_refcount == 0) {
        return NVML_ERROR_UNINITIALIZED;
    }
    return error_override(fn, -1);
}

static nvmlReturn_t device_enter(const char *fn, nvmlDevice_t device, struct gpu **out)
{
    int index = g_refcount > 0 ? device_index(device) : -1;
    log_call(fn, index);
    if (g_refcount == 0) {
        return NVML_ERROR_UNINITIALIZED;
    }
    if (index < 0) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    nvmlReturn_t r = error_override(fn, index);
    if (r != NVML_SUCCESS) {
        return r;
    }
    if (g_state.gpus[index].lost) {
        return NVML_ERROR_GPU_IS_LOST;
    }
    *out = &g_state.gpus[index];
    return NVML_SUCCESS;
}

/* Locks, logs the call and resolves the device or returns its error. */
#define LIBRARY_CALL()                                                                                                \
    LOCK_SCOPE();                                                                                                     \
    do {                                                                                                              \
        nvmlReturn_t r_ = library_enter(__func__);                                                                    \
        if (r_ != NVML_SUCCESS) {                                                                                     \
            return r_;                                                                                                \
        }                                                                                                             \
    } while (0)

#define DEVICE_CALL(device, g)                                                                                        \
    LOCK_SCOPE();                                                                                                     \
    struct gpu *g = NULL;                                                                                             \
    do {                                                                                                              \
        nvmlReturn_t r_ = device_enter(__func__, (device), &g);                                                       \
        if (r_ != NVML_SUCCESS) {                                                                                     \
            return r_;                                                                                                \
        }                                                                                                             \
    } while (0)

#define REQUIRE(ptr)                                                                                                  \
    do {                                                                                                              \
        if ((ptr) == NULL) {                                                                                          \
            return NVML_ERROR_INVALID_ARGUMENT;                                                                       \
        }                                                                                                             \
    } while (0)

#define RETURN_VALUE(opt, out, type)                                                                                  \
    do {                                                                                                              \
        REQUIRE(out);                                                                                                 \
        if (!(opt).set) {                                                                                             \
            return NVML_ERROR_NOT_SUPPORTED;                                                                          \
        }                                                                                                             \
        *(out) = (type)(opt).v;                                                                                       \
        return NVML_SUCCESS;                                                                                          \
    } while (0)

static nvmlReturn_t copy_string(const char *value, char *out, unsigned int length)
{
    REQUIRE(out);
    if (strlen(value) + 1 > length) {
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    strcpy(out, value);
    return NVML_SUCCESS;
}

static nvmlReturn_t do_init(const char *fn)
{
    LOCK_SCOPE();
    log_call(fn, -1);
    if (g_refcount > 0) {
        nvmlReturn_t r = error_override(fn, -1);
        if (r == NVML_SUCCESS) {
            g_refcount++;
        }
        return r;
    }
    struct parser p = {0};
    if (load_script(&p) != 0) {
        fprintf(stderr, "fakenvml: %s\n", p.err);
        memset(&g_state, 0, sizeof g_state);
        return NVML_ERROR_UNKNOWN;
    }
    nvmlReturn_t r = error_override(fn, -1);
    if (r != NVML_SUCCESS) {
        memset(&g_state, 0, sizeof g_state);
        return r;
    }
    g_refcount = 1;
    g_generation++;
    memset(g_sets, 0, sizeof g_sets);
    memset(g_gpm_samples, 0, sizeof g_gpm_samples);
    return NVML_SUCCESS;
}

/* ---- library functions ----------------------------------------------------------------------------------------- */

#ifndef FAKE_OMIT_nvmlInit
nvmlReturn_t nvmlInit(void)
{
    return do_init(__func__);
}
#endif

#ifndef FAKE_OMIT_nvmlInit_v2
nvmlReturn_t nvmlInit_v2(void)
{
    return do_init(__func__);
}
#endif

#ifndef FAKE_OMIT_nvmlInitWithFlags
nvmlReturn_t nvmlInitWithFlags(unsigned int flags)
{
    (void)flags;
    return do_init(__func__);
}
#endif

#ifndef FAKE_OMIT_nvmlShutdown
nvmlReturn_t nvmlShutdown(void)
{
    LIBRARY_CALL();
    if (--g_refcount == 0) {
        memset(&g_state, 0, sizeof g_state);
        memset(g_sets, 0, sizeof g_sets);
        memset(g_gpm_samples, 0, sizeof g_gpm_samples);
        g_generation++;
        pthread_cond_broadcast(&g_cond);
    }
    return NVML_SUCCESS;
}
#endif

#ifndef FAKE_OMIT_nvmlErrorString
const char *nvmlErrorString(nvmlReturn_t result)
{
    for (size_t i = 0; i < sizeof k_returns / sizeof k_returns[0]; i++) {
        if (k_returns[i].code == result) {
            return k_returns[i].name;
        }
    }
    return "NVML_ERROR_UNKNOWN_CODE";
}
#endif

#ifndef FAKE_OMIT_nvmlSystemGetDriverVersion
nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
    LIBRARY_CALL();
    return copy_string(g_state.driver_version, version, length);
}
#endif

#ifndef FAKE_OMIT_nvmlSystemGetNVMLVersion
nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length)
{
    LIBRARY_CALL();
    return copy_string(g_state.nvml_version, version, length);
}
#endif

#ifndef FAKE_OMIT_nvmlSystemGetCudaDriverVersion
nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *cudaDriverVersion)
{
    LIBRARY_CALL();
    RETURN_VALUE(g_state.cuda_driver_version, cudaDriverVersion, int);
}
#endif

#ifndef FAKE_OMIT_nvmlSystemGetCudaDriverVersion_v2
nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *cudaDriverVersion)
{
    LIBRARY_CALL();
    RETURN_VALUE(g_state.cuda_driver_version, cudaDriverVersion, int);
}
#endif

static nvmlReturn_t get_count(unsigned int *deviceCount)
{
    REQUIRE(deviceCount);
    *deviceCount = g_state.gpu_count;
    return NVML_SUCCESS;
}

#ifndef FAKE_OMIT_nvmlDeviceGetCount
nvmlReturn_t nvmlDeviceGetCount(unsigned int *deviceCount)
{
    LIBRARY_CALL();
    return get_count(deviceCount);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetCount_v2
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *deviceCount)
{
    LIBRARY_CALL();
    return get_count(deviceCount);
}
#endif

static nvmlReturn_t get_handle_by_index(const char *fn, unsigned int index, nvmlDevice_t *device)
{
    LOCK_SCOPE();
    log_call(fn, index < g_state.gpu_count ? (int)index : -1);
    if (g_refcount == 0) {
        return NVML_ERROR_UNINITIALIZED;
    }
    REQUIRE(device);
    if (index >= g_state.gpu_count) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    nvmlReturn_t r = error_override(fn, (int)index);
    if (r != NVML_SUCCESS) {
        return r;
    }
    device->handle = &g_devices[index];
    return NVML_SUCCESS;
}

#ifndef FAKE_OMIT_nvmlDeviceGetHandleByIndex
nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device)
{
    return get_handle_by_index(__func__, index, device);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetHandleByIndex_v2
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
    return get_handle_by_index(__func__, index, device);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetHandleByUUID
nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device)
{
    LIBRARY_CALL();
    REQUIRE(uuid);
    REQUIRE(device);
    for (unsigned int i = 0; i < g_state.gpu_count; i++) {
        if (strcmp(g_state.gpus[i].uuid, uuid) == 0) {
            device->handle = &g_devices[i];
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}
#endif

/* ---- identity -------------------------------------------------------------------------------------------------- */

#ifndef FAKE_OMIT_nvmlDeviceGetUUID
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
    DEVICE_CALL(device, g);
    return copy_string(g->uuid, uuid, length);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetName
nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
    DEVICE_CALL(device, g);
    return copy_string(g->name, name, length);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetSerial
nvmlReturn_t nvmlDeviceGetSerial(nvmlDevice_t device, char *serial, unsigned int length)
{
    DEVICE_CALL(device, g);
    if (g->serial[0] == '\0') {
        return NVML_ERROR_NOT_SUPPORTED;
    }
    return copy_string(g->serial, serial, length);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetVbiosVersion
nvmlReturn_t nvmlDeviceGetVbiosVersion(nvmlDevice_t device, char *version, unsigned int length)
{
    DEVICE_CALL(device, g);
    if (g->vbios[0] == '\0') {
        return NVML_ERROR_NOT_SUPPORTED;
    }
    return copy_string(g->vbios, version, length);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetIndex
nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index)
{
    DEVICE_CALL(device, g);
    REQUIRE(index);
    *index = (unsigned int)(g - g_state.gpus);
    return NVML_SUCCESS;
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetMinorNumber
nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned int *minorNumber)
{
    DEVICE_CALL(device, g);
    RETURN_VALUE(g->minor, minorNumber, unsigned int);
}
#endif

static nvmlReturn_t fill_pci_info(struct gpu *g, nvmlPciInfo_t *pci)
{
    REQUIRE(pci);
    unsigned int domain = 0, bus = 0, dev = 0, function = 0;
    memset(pci, 0, sizeof *pci);
    strcpy(pci->busId, g->pci_bus_id);
    if (sscanf(g->pci_bus_id, "%x:%x:%x.%x", &domain, &bus, &dev, &function) == 4) {
        pci->domain = domain;
        pci->bus = bus;
        pci->device = dev;
    }
    snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, NVML_DEVICE_PCI_BUS_ID_LEGACY_FMT, domain & 0xFFFFu, bus,
             dev & 0xFFu);
    pci->pciDeviceId = 0x233010DE; /* NVIDIA vendor id in the low half */
    return NVML_SUCCESS;
}

#ifndef FAKE_OMIT_nvmlDeviceGetPciInfo_v3
nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
    DEVICE_CALL(device, g);
    return fill_pci_info(g, pci);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetCudaComputeCapability
nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int *major, int *minor)
{
    DEVICE_CALL(device, g);
    REQUIRE(major);
    REQUIRE(minor);
    if (!g->cc_major.set) {
        return NVML_ERROR_NOT_SUPPORTED;
    }
    *major = (int)g->cc_major.v;
    *minor = (int)g->cc_minor.v;
    return NVML_SUCCESS;
}
#endif

/* ---- memory ---------------------------------------------------------------------------------------------------- */

#ifndef FAKE_OMIT_nvmlDeviceGetMemoryInfo
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
    DEVICE_CALL(device, g);
    REQUIRE(memory);
    if (!g->mem_total.set) {
        return NVML_ERROR_NOT_SUPPORTED;
    }
    memory->total = g->mem_total.v;
    memory->used = g->mem_reserved.v + g->mem_used.v;
    memory->free = g->mem_total.v - memory->used;
    return NVML_SUCCESS;
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetMemoryInfo_v2
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)
{
    DEVICE_CALL(device, g);
    REQUIRE(memory);
    if (memory->version != nvmlMemory_v2) {
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    }
    if (!g->mem_total.set) {
        return NVML_ERROR_NOT_SUPPORTED;
    }
    memory->total = g->mem_total.v;
    memory->reserved = g->mem_reserved.v;
    memory->used = g->mem_used.v;
    memory->free = g->mem_total.v - g->mem_reserved.v - g->mem_used.v;
    return NVML_SUCCESS;
}
#endif

/* ---- utilization ----------------------------------------------------------------------------------------------- */

#ifndef FAKE_OMIT_nvmlDeviceGetUtilizationRates
nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization)
{
    DEVICE_CALL(device, g);
    REQUIRE(utilization);
    if (!g->util_gpu.set) {
        return NVML_ERROR_NOT_SUPPORTED;
    }
    utilization->gpu = (unsigned int)g->util_gpu.v;
    utilization->memory = (unsigned int)g->util_mem.v;
    return NVML_SUCCESS;
}
#endif

static nvmlReturn_t codec_utilization(opt_u64 util, opt_u64 period, unsigned int *utilization,
                                      unsigned int *samplingPeriodUs)
{
    REQUIRE(utilization);
    REQUIRE(samplingPeriodUs);
    if (!util.set) {
        return NVML_ERROR_NOT_SUPPORTED;
    }
    *utilization = (unsigned int)util.v;
    *samplingPeriodUs = period.set ? (unsigned int)period.v : 1000000u;
    return NVML_SUCCESS;
}

#ifndef FAKE_OMIT_nvmlDeviceGetEncoderUtilization
nvmlReturn_t nvmlDeviceGetEncoderUtilization(nvmlDevice_t device, unsigned int *utilization,
                                             unsigned int *samplingPeriodUs)
{
    DEVICE_CALL(device, g);
    return codec_utilization(g->enc_util, g->enc_period, utilization, samplingPeriodUs);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetDecoderUtilization
nvmlReturn_t nvmlDeviceGetDecoderUtilization(nvmlDevice_t device, unsigned int *utilization,
                                             unsigned int *samplingPeriodUs)
{
    DEVICE_CALL(device, g);
    return codec_utilization(g->dec_util, g->dec_period, utilization, samplingPeriodUs);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetSamples
nvmlReturn_t nvmlDeviceGetSamples(nvmlDevice_t device, nvmlSamplingType_t type, unsigned long long lastSeenTimeStamp,
                                  nvmlValueType_t *sampleValType, unsigned int *sampleCount, nvmlSample_t *samples)
{
    DEVICE_CALL(device, g);
    REQUIRE(sampleValType);
    REQUIRE(sampleCount);
    if ((int)type < 0 || (int)type >= NVML_SAMPLINGTYPE_COUNT) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    unsigned int newer = 0;
    if ((int)type < SAMPLE_TYPES) {
        for (int i = 0; i < g->nsamples[type]; i++) {
            newer += g->samples[type][i].ts > lastSeenTimeStamp;
        }
    }
    if (newer == 0) {
        return NVML_ERROR_NOT_FOUND;
    }
    *sampleValType = NVML_VALUE_TYPE_UNSIGNED_INT;
    if (samples == NULL) {
        *sampleCount = newer;
        return NVML_SUCCESS;
    }
    if (*sampleCount < newer) {
        *sampleCount = newer;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    unsigned int n = 0;
    for (int i = 0; i < g->nsamples[type]; i++) {
        if (g->samples[type][i].ts > lastSeenTimeStamp) {
            memset(&samples[n], 0, sizeof samples[n]);
            samples[n].timeStamp = g->samples[type][i].ts;
            samples[n].sampleValue.uiVal = g->samples[type][i].value;
            n++;
        }
    }
    *sampleCount = n;
    return NVML_SUCCESS;
}
#endif

/* ---- thermal, power, energy, clocks ---------------------------------------------------------------------------- */

#ifndef FAKE_OMIT_nvmlDeviceGetTemperature
nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, nvmlTemperatureSensors_t sensorType, unsigned int *temp)
{
    DEVICE_CALL(device, g);
    if (sensorType != NVML_TEMPERATURE_GPU) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    RETURN_VALUE(g->temp_gpu, temp, unsigned int);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetTemperatureV
nvmlReturn_t nvmlDeviceGetTemperatureV(nvmlDevice_t device, nvmlTemperature_t *temperature)
{
    DEVICE_CALL(device, g);
    REQUIRE(temperature);
    if (temperature->version != nvmlTemperature_v1) {
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    }
    if (temperature->sensorType != NVML_TEMPERATURE_GPU) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    RETURN_VALUE(g->temp_gpu, &temperature->temperature, int);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetPowerUsage
nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power)
{
    DEVICE_CALL(device, g);
    RETURN_VALUE(g->power_mw, power, unsigned int);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetEnforcedPowerLimit
nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *limit)
{
    DEVICE_CALL(device, g);
    RETURN_VALUE(g->power_enforced_mw, limit, unsigned int);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetPowerManagementLimit
nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t device, unsigned int *limit)
{
    DEVICE_CALL(device, g);
    RETURN_VALUE(g->power_mgmt_mw, limit, unsigned int);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetTotalEnergyConsumption
nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, unsigned long long *energy)
{
    DEVICE_CALL(device, g);
    REQUIRE(energy);
    if (!g->energy_mj.set) {
        return NVML_ERROR_NOT_SUPPORTED;
    }
    unsigned long long grown = 0;
    if (g->energy_mw.set) {
        unsigned long long now = now_us(CLOCK_REALTIME);
        grown = now > g_state.init_time_us ? g->energy_mw.v * (now - g_state.init_time_us) / 1000000 : 0;
    }
    *energy = g->energy_mj.v + grown;
    return NVML_SUCCESS;
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetClockInfo
nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, nvmlClockType_t type, unsigned int *clock)
{
    DEVICE_CALL(device, g);
    if ((int)type < 0 || (int)type >= NVML_CLOCK_COUNT) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    RETURN_VALUE(g->clock[type], clock, unsigned int);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetMaxClockInfo
nvmlReturn_t nvmlDeviceGetMaxClockInfo(nvmlDevice_t device, nvmlClockType_t type, unsigned int *clock)
{
    DEVICE_CALL(device, g);
    if ((int)type < 0 || (int)type >= NVML_CLOCK_COUNT) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    RETURN_VALUE(g->max_clock[type], clock, unsigned int);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetCurrentClocksEventReasons
nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device, unsigned long long *clocksEventReasons)
{
    DEVICE_CALL(device, g);
    RETURN_VALUE(g->clk_reasons, clocksEventReasons, unsigned long long);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetCurrentClocksThrottleReasons
nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device, unsigned long long *clocksThrottleReasons)
{
    DEVICE_CALL(device, g);
    RETURN_VALUE(g->clk_reasons, clocksThrottleReasons, unsigned long long);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetSupportedClocksEventReasons
nvmlReturn_t nvmlDeviceGetSupportedClocksEventReasons(nvmlDevice_t device,
                                                      unsigned long long *supportedClocksEventReasons)
{
    DEVICE_CALL(device, g);
    RETURN_VALUE(g->clk_supported, supportedClocksEventReasons, unsigned long long);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetSupportedClocksThrottleReasons
nvmlReturn_t nvmlDeviceGetSupportedClocksThrottleReasons(nvmlDevice_t device,
                                                         unsigned long long *supportedClocksThrottleReasons)
{
    DEVICE_CALL(device, g);
    RETURN_VALUE(g->clk_supported, supportedClocksThrottleReasons, unsigned long long);
}
#endif

/* ---- PCIe, ECC, row remapping ---------------------------------------------------------------------------------- */

#ifndef FAKE_OMIT_nvmlDeviceGetPcieThroughput
nvmlReturn_t nvmlDeviceGetPcieThroughput(nvmlDevice_t device, nvmlPcieUtilCounter_t counter, unsigned int *value)
{
    DEVICE_CALL(device, g);
    switch (counter) {
    case NVML_PCIE_UTIL_TX_BYTES:
        RETURN_VALUE(g->pcie_tx, value, unsigned int);
    case NVML_PCIE_UTIL_RX_BYTES:
        RETURN_VALUE(g->pcie_rx, value, unsigned int);
    default:
        return NVML_ERROR_INVALID_ARGUMENT;
    }
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetPcieReplayCounter
nvmlReturn_t nvmlDeviceGetPcieReplayCounter(nvmlDevice_t device, unsigned int *value)
{
    DEVICE_CALL(device, g);
    RETURN_VALUE(g->pcie_replay, value, unsigned int);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetEccMode
nvmlReturn_t nvmlDeviceGetEccMode(nvmlDevice_t device, nvmlEnableState_t *current, nvmlEnableState_t *pending)
{
    DEVICE_CALL(device, g);
    REQUIRE(current);
    REQUIRE(pending);
    if (!g->ecc_mode.set) {
        return NVML_ERROR_NOT_SUPPORTED;
    }
    *current = *pending = g->ecc_mode.v ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
    return NVML_SUCCESS;
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetTotalEccErrors
nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, nvmlMemoryErrorType_t errorType,
                                         nvmlEccCounterType_t counterType, unsigned long long *eccCounts)
{
    DEVICE_CALL(device, g);
    if ((int)errorType < 0 || errorType >= NVML_MEMORY_ERROR_TYPE_COUNT || (int)counterType < 0 ||
        counterType >= NVML_ECC_COUNTER_TYPE_COUNT) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    RETURN_VALUE(g->ecc[errorType][counterType], eccCounts, unsigned long long);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetRemappedRows
nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t device, unsigned int *corrRows, unsigned int *uncRows,
                                       unsigned int *isPending, unsigned int *failureOccurred)
{
    DEVICE_CALL(device, g);
    REQUIRE(corrRows);
    REQUIRE(uncRows);
    REQUIRE(isPending);
    REQUIRE(failureOccurred);
    if (!g->remap_corr.set && !g->remap_unc.set) {
        return NVML_ERROR_NOT_SUPPORTED;
    }
    *corrRows = (unsigned int)g->remap_corr.v;
    *uncRows = (unsigned int)g->remap_unc.v;
    *isPending = g->remap_pending.v != 0;
    *failureOccurred = g->remap_failure.v != 0;
    return NVML_SUCCESS;
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetFieldValues
nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t device, int valuesCount, nvmlFieldValue_t *values)
{
    DEVICE_CALL(device, g);
    REQUIRE(values);
    if (valuesCount <= 0) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    unsigned long long ts = now_us(CLOCK_REALTIME);
    for (int i = 0; i < valuesCount; i++) {
        nvmlFieldValue_t *v = &values[i];
        v->timestamp = (long long)ts;
        v->latencyUsec = 0;
        v->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
        for (int f = 0; f < g->nfields; f++) {
            if (g->fields[f].id == v->fieldId) {
                v->valueType = NVML_VALUE_TYPE_UNSIGNED_LONG_LONG;
                v->value.ullVal = g->fields[f].value;
                v->nvmlReturn = NVML_SUCCESS;
                break;
            }
        }
    }
    return NVML_SUCCESS;
}
#endif

/* ---- processes ------------------------------------------------------------------------------------------------- */

/* Selects g's processes of one type into sel; answers the size query every process list shares. */
static nvmlReturn_t select_processes(struct gpu *g, enum proc_type type, unsigned int *infoCount, const void *infos,
                                    struct proc *sel[MAX_PROCS], unsigned int *n)
{
    REQUIRE(infoCount);
    *n = 0;
    for (int j = 0; j < g->nprocs; j++) {
        if (g->procs[j].type.v == (unsigned long long)type) {
            sel[(*n)++] = &g->procs[j];
        }
    }
    if (*infoCount < *n) {
        *infoCount = *n;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    if (*n > 0) {
        REQUIRE(infos);
    }
    *infoCount = *n;
    return NVML_SUCCESS;
}

/* nvmlProcessInfo_t is the v2 layout, used by the _v2 and _v3 entry points. */
static nvmlReturn_t running_processes(struct gpu *g, enum proc_type type, unsigned int *infoCount,
                                      nvmlProcessInfo_t *infos)
{
    struct proc *sel[MAX_PROCS];
    unsigned int n;
    nvmlReturn_t r = select_processes(g, type, infoCount, infos, sel, &n);
    for (unsigned int k = 0; r == NVML_SUCCESS && k < n; k++) {
        infos[k].pid = (unsigned int)sel[k]->pid.v;
        infos[k].usedGpuMemory = sel[k]->used_memory.v;
        infos[k].gpuInstanceId = sel[k]->gpu_instance_id.set ? (unsigned int)sel[k]->gpu_instance_id.v : NO_INSTANCE;
        infos[k].computeInstanceId =
            sel[k]->compute_instance_id.set ? (unsigned int)sel[k]->compute_instance_id.v : NO_INSTANCE;
    }
    return r;
}

#ifndef FAKE_OMIT_nvmlDeviceGetComputeRunningProcesses
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device, unsigned int *infoCount,
                                                  nvmlProcessInfo_v1_t *infos)
{
    DEVICE_CALL(device, g);
    struct proc *sel[MAX_PROCS];
    unsigned int n;
    nvmlReturn_t r = select_processes(g, PROC_COMPUTE, infoCount, infos, sel, &n);
    for (unsigned int k = 0; r == NVML_SUCCESS && k < n; k++) {
        infos[k].pid = (unsigned int)sel[k]->pid.v;
        infos[k].usedGpuMemory = sel[k]->used_memory.v;
    }
    return r;
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetComputeRunningProcesses_v2
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device, unsigned int *infoCount,
                                                     nvmlProcessInfo_v2_t *infos)
{
    DEVICE_CALL(device, g);
    return running_processes(g, PROC_COMPUTE, infoCount, infos);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetComputeRunningProcesses_v3
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount,
                                                     nvmlProcessInfo_t *infos)
{
    DEVICE_CALL(device, g);
    return running_processes(g, PROC_COMPUTE, infoCount, infos);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetGraphicsRunningProcesses_v3
nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount,
                                                      nvmlProcessInfo_t *infos)
{
    DEVICE_CALL(device, g);
    return running_processes(g, PROC_GRAPHICS, infoCount, infos);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetMPSComputeRunningProcesses_v3
nvmlReturn_t nvmlDeviceGetMPSComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *infoCount,
                                                        nvmlProcessInfo_t *infos)
{
    DEVICE_CALL(device, g);
    return running_processes(g, PROC_MPS, infoCount, infos);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetProcessUtilization
nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device, nvmlProcessUtilizationSample_t *utilization,
                                             unsigned int *processSamplesCount, unsigned long long lastSeenTimeStamp)
{
    DEVICE_CALL(device, g);
    REQUIRE(processSamplesCount);
    unsigned int newer = 0;
    for (int j = 0; j < g->nprocs; j++) {
        newer += g->procs[j].timestamp.set && g->procs[j].timestamp.v > lastSeenTimeStamp;
    }
    if (newer == 0) {
        return NVML_ERROR_NOT_FOUND;
    }
    /* Like the driver: a NULL buffer (or a short one) asks for the size. */
    if (utilization == NULL || *processSamplesCount < newer) {
        *processSamplesCount = newer;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    unsigned int k = 0;
    for (int j = 0; j < g->nprocs; j++) {
        struct proc *pr = &g->procs[j];
        if (!pr->timestamp.set || pr->timestamp.v <= lastSeenTimeStamp) {
            continue;
        }
        utilization[k].pid = (unsigned int)pr->pid.v;
        utilization[k].timeStamp = pr->timestamp.v;
        utilization[k].smUtil = (unsigned int)pr->sm_util.v;
        utilization[k].memUtil = (unsigned int)pr->mem_util.v;
        utilization[k].encUtil = (unsigned int)pr->enc_util.v;
        utilization[k].decUtil = (unsigned int)pr->dec_util.v;
        k++;
    }
    *processSamplesCount = k;
    return NVML_SUCCESS;
}
#endif

/* ---- MIG ------------------------------------------------------------------------------------------------------- */

#ifndef FAKE_OMIT_nvmlDeviceGetMigMode
nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *currentMode, unsigned int *pendingMode)
{
    DEVICE_CALL(device, g);
    REQUIRE(currentMode);
    REQUIRE(pendingMode);
    if (!g->mig_current.set) {
        return NVML_ERROR_NOT_SUPPORTED;
    }
    *currentMode = (unsigned int)g->mig_current.v;
    *pendingMode = g->mig_pending.set ? (unsigned int)g->mig_pending.v : (unsigned int)g->mig_current.v;
    return NVML_SUCCESS;
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetMaxMigDeviceCount
nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned int *count)
{
    DEVICE_CALL(device, g);
    REQUIRE(count);
    *count = (unsigned int)g->mig_max.v;
    return NVML_SUCCESS;
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetMigDeviceHandleByIndex
nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned int index, nvmlDevice_t *migDevice)
{
    DEVICE_CALL(device, g);
    (void)g;
    (void)index;
    REQUIRE(migDevice);
    return NVML_ERROR_NOT_FOUND;
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceIsMigDeviceHandle
nvmlReturn_t nvmlDeviceIsMigDeviceHandle(nvmlDevice_t device, unsigned int *isMigDevice)
{
    DEVICE_CALL(device, g);
    (void)g;
    REQUIRE(isMigDevice);
    *isMigDevice = 0;
    return NVML_SUCCESS;
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetGpuInstanceId
nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t device, unsigned int *id)
{
    DEVICE_CALL(device, g);
    (void)g;
    REQUIRE(id);
    return NVML_ERROR_NOT_SUPPORTED; /* not a MIG device handle */
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetComputeInstanceId
nvmlReturn_t nvmlDeviceGetComputeInstanceId(nvmlDevice_t device, unsigned int *id)
{
    DEVICE_CALL(device, g);
    (void)g;
    REQUIRE(id);
    return NVML_ERROR_NOT_SUPPORTED; /* not a MIG device handle */
}
#endif

/* ---- events ---------------------------------------------------------------------------------------------------- */

static struct nvmlEventSet_st *event_set(nvmlEventSet_t set)
{
    struct nvmlEventSet_st *s = set.handle;
    if (s < g_sets || s >= g_sets + MAX_EVENT_SETS || (size_t)((char *)s - (char *)g_sets) % sizeof *s != 0 ||
        !s->in_use) {
        return NULL;
    }
    return s;
}

#ifndef FAKE_OMIT_nvmlEventSetCreate
nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set)
{
    LIBRARY_CALL();
    REQUIRE(set);
    for (int i = 0; i < MAX_EVENT_SETS; i++) {
        if (!g_sets[i].in_use) {
            memset(&g_sets[i], 0, sizeof g_sets[i]);
            g_sets[i].in_use = 1;
            set->handle = &g_sets[i];
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_INSUFFICIENT_RESOURCES;
}
#endif

#ifndef FAKE_OMIT_nvmlEventSetFree
nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set)
{
    LIBRARY_CALL();
    struct nvmlEventSet_st *s = event_set(set);
    if (s == NULL) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    s->in_use = 0;
    pthread_cond_broadcast(&g_cond);
    return NVML_SUCCESS;
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceGetSupportedEventTypes
nvmlReturn_t nvmlDeviceGetSupportedEventTypes(nvmlDevice_t device, unsigned long long *eventTypes)
{
    DEVICE_CALL(device, g);
    RETURN_VALUE(g->event_types, eventTypes, unsigned long long);
}
#endif

#ifndef FAKE_OMIT_nvmlDeviceRegisterEvents
nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long eventTypes, nvmlEventSet_t set)
{
    DEVICE_CALL(device, g);
    struct nvmlEventSet_st *s = event_set(set);
    if (s == NULL) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    if ((eventTypes & ~g->event_types.v) != 0) {
        return NVML_ERROR_NOT_SUPPORTED;
    }
    s->mask[g - g_state.gpus] |= eventTypes;
    return NVML_SUCCESS;
}
#endif

static int next_event(struct nvmlEventSet_st *s, nvmlEventData_t *data)
{
    for (unsigned int i = 0; i < g_state.gpu_count; i++) {
        struct gpu *g = &g_state.gpus[i];
        if ((s->mask[i] & nvmlEventTypeXidCriticalError) && s->delivered[i] < g->nxids) {
            memset(data, 0, sizeof *data);
            data->device.handle = &g_devices[i];
            data->eventType = nvmlEventTypeXidCriticalError;
            data->eventData = g->xids[s->delivered[i]++];
            data->gpuInstanceId = NO_INSTANCE;
            data->computeInstanceId = NO_INSTANCE;
            return 1;
        }
    }
    return 0;
}

static nvmlReturn_t event_set_wait(const char *fn, nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms)
{
    LOCK_SCOPE();
    nvmlReturn_t r = library_enter(fn);
    if (r != NVML_SUCCESS) {
        return r;
    }
    REQUIRE(data);
    struct nvmlEventSet_st *s = event_set(set);
    if (s == NULL) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    unsigned long long generation = g_generation;
    unsigned long long deadline = now_us(CLOCK_MONOTONIC) + (unsigned long long)timeoutms * 1000ull;
    struct timespec until = {.tv_sec = (time_t)(deadline / 1000000ull),
                             .tv_nsec = (long)(deadline % 1000000ull) * 1000L};
    for (;;) {
        if (next_event(s, data)) {
            return NVML_SUCCESS;
        }
        if (pthread_cond_timedwait(&g_cond, &g_mu, &until) == ETIMEDOUT) {
            return NVML_ERROR_TIMEOUT;
        }
        if (g_generation != generation) {
            return NVML_ERROR_UNINITIALIZED;
        }
        if (!s->in_use) {
            return NVML_ERROR_INVALID_ARGUMENT;
        }
    }
}

#ifndef FAKE_OMIT_nvmlEventSetWait
nvmlReturn_t nvmlEventSetWait(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms)
{
    return event_set_wait(__func__, set, data, timeoutms);
}
#endif

#ifndef FAKE_OMIT_nvmlEventSetWait_v2
nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms)
{
    return event_set_wait(__func__, set, data, timeoutms);
}
#endif

/* ---- GPU performance monitoring (GPM) -------------------------------------------------------------------------- */

static struct nvmlGpmSample_st *gpm_sample(nvmlGpmSample_t s)
{
    struct nvmlGpmSample_st *h = s.handle;
    if (h < g_gpm_samples || h >= g_gpm_samples + MAX_GPM_SAMPLES ||
        (size_t)((char *)h - (char *)g_gpm_samples) % sizeof *h != 0 || !h->in_use) {
        return NULL;
    }
    return h;
}

#ifndef FAKE_OMIT_nvmlGpmQueryDeviceSupport
nvmlReturn_t nvmlGpmQueryDeviceSupport(nvmlDevice_t device, nvmlGpmSupport_t *gpmSupport)
{
    DEVICE_CALL(device, g);
    REQUIRE(gpmSupport);
    if (gpmSupport->version != NVML_GPM_SUPPORT_VERSION) {
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    }
    /* A GPU before Hopper answers SUCCESS with isSupportedDevice 0. */
    gpmSupport->isSupportedDevice = g->gpm_supported.set && g->gpm_supported.v != 0;
    return NVML_SUCCESS;
}
#endif

#ifndef FAKE_OMIT_nvmlGpmSampleAlloc
nvmlReturn_t nvmlGpmSampleAlloc(nvmlGpmSample_t *gpmSample)
{
    LIBRARY_CALL();
    REQUIRE(gpmSample);
    for (int i = 0; i < MAX_GPM_SAMPLES; i++) {
        if (!g_gpm_samples[i].in_use) {
            g_gpm_samples[i] = (struct nvmlGpmSample_st){.in_use = 1, .gpu = -1, .gi = -1};
            gpmSample->handle = &g_gpm_samples[i];
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_MEMORY;
}
#endif

#ifndef FAKE_OMIT_nvmlGpmSampleFree
nvmlReturn_t nvmlGpmSampleFree(nvmlGpmSample_t gpmSample)
{
    LIBRARY_CALL();
    struct nvmlGpmSample_st *h = gpm_sample(gpmSample);
    if (h == NULL) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    h->in_use = 0;
    return NVML_SUCCESS;
}
#endif

static nvmlReturn_t gpm_take(struct gpu *g, nvmlDevice_t device, long long gi, nvmlGpmSample_t gpmSample)
{
    struct nvmlGpmSample_st *h = gpm_sample(gpmSample);
    if (h == NULL) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    if (!g->gpm_supported.set || g->gpm_supported.v == 0) {
        return NVML_ERROR_NOT_SUPPORTED;
    }
    h->gpu = device_index(device);
    h->gi = gi;
    h->taken_us = now_us(CLOCK_MONOTONIC);
    return NVML_SUCCESS;
}

#ifndef FAKE_OMIT_nvmlGpmSampleGet
nvmlReturn_t nvmlGpmSampleGet(nvmlDevice_t device, nvmlGpmSample_t gpmSample)
{
    DEVICE_CALL(device, g);
    return gpm_take(g, device, -1, gpmSample);
}
#endif

#ifndef FAKE_OMIT_nvmlGpmMigSampleGet
nvmlReturn_t nvmlGpmMigSampleGet(nvmlDevice_t device, unsigned int gpuInstanceId, nvmlGpmSample_t gpmSample)
{
    DEVICE_CALL(device, g);
    if (!g->mig_current.set || g->mig_current.v != NVML_DEVICE_MIG_ENABLE) {
        return NVML_ERROR_NOT_SUPPORTED;
    }
    return gpm_take(g, device, (long long)gpuInstanceId, gpmSample);
}
#endif

#ifndef FAKE_OMIT_nvmlGpmMetricsGet
nvmlReturn_t nvmlGpmMetricsGet(nvmlGpmMetricsGet_t *metricsGet)
{
    LIBRARY_CALL();
    REQUIRE(metricsGet);
    if (metricsGet->version != NVML_GPM_METRICS_GET_VERSION) {
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    }
    struct nvmlGpmSample_st *s1 = gpm_sample(metricsGet->sample1), *s2 = gpm_sample(metricsGet->sample2);
    if (s1 == NULL || s2 == NULL || s1 == s2 || s1->gpu < 0 || s1->gpu != s2->gpu || s1->gi != s2->gi ||
        s2->taken_us < s1->taken_us || metricsGet->numMetrics > NVML_GPM_METRIC_MAX) {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    struct gpu *g = &g_state.gpus[s1->gpu];
    if (g->lost) {
        return NVML_ERROR_GPU_IS_LOST;
    }
    for (unsigned int i = 0; i < metricsGet->numMetrics; i++) {
        nvmlGpmMetric_t *m = &metricsGet->metrics[i];
        m->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
        m->value = 0;
        m->metricInfo.shortName = m->metricInfo.longName = m->metricInfo.unit = NULL;
        for (int k = 0; k < g->ngpm; k++) {
            if (g->gpm[k].id == m->metricId) {
                m->nvmlReturn = NVML_SUCCESS;
                m->value = g->gpm[k].value;
                break;
            }
        }
    }
    return NVML_SUCCESS;
}
#endif
