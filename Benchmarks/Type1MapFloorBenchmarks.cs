using BenchmarkDotNet.Attributes;

namespace KernelModel.Benchmarks;

/// <summary>
/// The physical floor of mapping 1 GiB of 4 KiB pages: per page, one IOPTE written (a ulong into
/// an array) and one page reference taken (an Interlocked.Increment on a refcount field), 262,144
/// times — the baseline — against VFIO_IOMMU_MAP_DMA of 1 GiB of 4 KiB-backed memory through the
/// type1 ioctl path (unmapped again in iteration cleanup, so that one runs once per iteration).
/// </summary>
[MemoryDiagnoser]
public class Type1MapFloorBenchmarks
{
    private const ulong GiB = 1UL << 30;
    private const ulong Iova = 64 * GiB;
    private const int Pages = (int)(GiB >> 12);

    private readonly ulong[] _ioptes = new ulong[Pages];
    private long _refcount;
    private Type1MapBenchmarkHost _host = null!;
    private ulong _va;

    [GlobalSetup(Target = nameof(Map1GiB_4K))]
    public void Setup()
    {
        _host = new Type1MapBenchmarkHost(Type1MapBenchmarkHost.Nic);
        _va = _host.Populate(GiB, Backing.Pages4K);
        Map1GiB_4K();
        Unmap();
        Type1MapBenchmarkHost.WarmJit(() =>
        {
            _host.MapDma(_va, Iova, 2UL << 20);
            _host.UnmapDma(Iova, 2UL << 20);
        });
    }

    [GlobalSetup(Target = nameof(Floor1GiB_4K))]
    public void SetupFloor() => Type1MapBenchmarkHost.WarmJit(() => Floor1GiB_4K());

    // Both benchmarks run one invocation per iteration, so they share a job and get a ratio.
    [IterationCleanup(Target = nameof(Floor1GiB_4K))]
    public void ResetRefcount() => _refcount = 0;

    [GlobalCleanup(Target = nameof(Map1GiB_4K))]
    public void Cleanup() => _host.Process.Exit();

    [IterationCleanup(Target = nameof(Map1GiB_4K))]
    public void Unmap() => _host.UnmapDma(Iova, GiB);

    [Benchmark(Baseline = true)]
    public long Floor1GiB_4K()
    {
        var ioptes = _ioptes;
        const ulong bits = 0x43;   // present | read | write
        for (var i = 0; i < ioptes.Length; i++)
        {
            ioptes[i] = ((ulong)i << 12) | bits;
            Interlocked.Increment(ref _refcount);
        }

        return _refcount;
    }

    [Benchmark]
    public long Map1GiB_4K() => _host.MapDma(_va, Iova, GiB);
}
