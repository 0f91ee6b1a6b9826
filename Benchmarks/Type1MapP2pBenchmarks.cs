using BenchmarkDotNet.Attributes;
using KernelModel.Iommu;
using KernelModel.Pci.VfioPci;

namespace KernelModel.Benchmarks;

/// <summary>
/// Peer-to-peer DMA mapping of the GPU's 32 GiB BAR2 (0000:02:00.0, vfio-pci, mmapped from its
/// device fd): by range, as the strict PFNMAP path does it — one VFIO_IOMMU_MAP_DMA that asks the
/// driver for the BAR's pfns (VmaToPfn) and maps the 1 GiB-aligned range with 32 IOPTEs of 1 GiB —
/// against the baseline of what legacy type1 amounts to without contiguity detection: one
/// IommuDomain.Map of 4 KiB per page, 8,388,608 of them. Each map is undone in iteration cleanup.
/// </summary>
[MemoryDiagnoser]
public class Type1MapP2pBenchmarks
{
    private const ulong GiB = 1UL << 30;
    private const ulong BarSize = 32 * GiB;
    private const ulong Page = 4096;
    private const ulong Iova = 256 * GiB;

    private Type1MapBenchmarkHost _host = null!;
    private IommuDomain _domain = null!;
    private ulong _barVa;
    private ulong _barPhys;

    [GlobalSetup]
    public void Setup()
    {
        _host = new Type1MapBenchmarkHost(Type1MapBenchmarkHost.Nic, Type1MapBenchmarkHost.Gpu);
        var gpu = _host.OpenDevice(Type1MapBenchmarkHost.Gpu);
        _barVa = _host.Mmap(BarSize, MapFlags.Shared, gpu, VfioPciRegions.IndexToOffset(2));
        _host.Machine.TryGetDevice(Type1MapBenchmarkHost.Gpu, out var device);
        _barPhys = device.Mmio.Single(m => m.Size == BarSize).Start.Value;
        _domain = _host.Machine.AllocateDomain();

        Type1MapBenchmarkHost.WarmJit(() =>
        {
            MapByRange32GiB();
            UnmapByRange();
        });
        MapPerPage32GiB();
        UnmapPerPage();
    }

    [GlobalCleanup]
    public void Cleanup() => _host.Process.Exit();

    [IterationCleanup(Target = nameof(MapPerPage32GiB))]
    public void UnmapPerPage() => _domain.Unmap(new Iova(Iova), BarSize);

    [IterationCleanup(Target = nameof(MapByRange32GiB))]
    public void UnmapByRange() => _host.UnmapDma(Iova, BarSize);

    [Benchmark(Baseline = true)]
    public long MapPerPage32GiB()
    {
        for (ulong off = 0; off < BarSize; off += Page)
        {
            var mapped = _domain.Map(new Iova(Iova + off), new PhysAddr(_barPhys + off), Page, IommuProt.Read | IommuProt.Write);
            if (!mapped.IsOk)
            {
                throw new InvalidOperationException($"map: {mapped}");
            }
        }

        return _domain.LiveIoptes;
    }

    [Benchmark]
    public long MapByRange32GiB() => _host.MapDma(_barVa, Iova, BarSize);
}
