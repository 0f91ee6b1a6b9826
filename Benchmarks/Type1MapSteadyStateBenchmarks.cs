using BenchmarkDotNet.Attributes;

namespace KernelModel.Benchmarks;

/// <summary>
/// The steady state of a user that maps and unmaps one 2 MiB buffer over and over through the type1
/// ioctl path: after a first round (IOMMU page-table nodes cached, vfio_dma entry recycled, pooled
/// pin batch, preallocated ioctl arguments) a MAP_DMA + UNMAP_DMA should allocate nothing. 4 KiB
/// pages (the baseline) and one THP.
/// </summary>
[MemoryDiagnoser]
public class Type1MapSteadyStateBenchmarks
{
    private const ulong MiB2 = 2UL << 20;
    private const ulong Iova = 1UL << 32;

    private Type1MapBenchmarkHost _host = null!;
    private ulong _pages4K;
    private ulong _thp;

    [GlobalSetup]
    public void Setup()
    {
        _host = new Type1MapBenchmarkHost(Type1MapBenchmarkHost.Nic);
        _pages4K = _host.Populate(MiB2, Backing.Pages4K);
        _thp = _host.Populate(MiB2, Backing.Thp);
        MapUnmap2MiB_4K();
        MapUnmap2MiB_Thp();
    }

    [GlobalCleanup]
    public void Cleanup() => _host.Process.Exit();

    [Benchmark(Baseline = true)]
    public ulong MapUnmap2MiB_4K() => MapUnmap(_pages4K);

    [Benchmark]
    public ulong MapUnmap2MiB_Thp() => MapUnmap(_thp);

    private ulong MapUnmap(ulong va)
    {
        _host.MapDma(va, Iova, MiB2);
        return _host.UnmapDma(Iova, MiB2);
    }
}
