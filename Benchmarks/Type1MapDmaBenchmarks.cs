using BenchmarkDotNet.Attributes;

namespace KernelModel.Benchmarks;

/// <summary>
/// VFIO_IOMMU_MAP_DMA and VFIO_IOMMU_UNMAP_DMA of 1 GiB and 16 GiB of anonymous memory through the
/// real ioctl path of a type1v2 container (the NIC's group): pin in batches, charge locked_vm, map
/// each physically contiguous run with the largest IOPTEs; and back. Backed by 4 KiB pages (the
/// baseline), THP or 1 GiB hugetlb pages, all faulted in during setup.
/// </summary>
/// <remarks>
/// Map and unmap are measured apart: each invocation of a Map benchmark maps the same memory once
/// more, at the next of <see cref="Copies"/> IOVA slots, and iteration cleanup unmaps them; each
/// invocation of an Unmap benchmark unmaps the next slot that iteration setup mapped. So every
/// iteration times <see cref="Copies"/> operations, not one — the microsecond cases need that.
/// </remarks>
[MemoryDiagnoser]
[InvocationCount(Copies)]
public class Type1MapDmaBenchmarks
{
    private const int Copies = 16;
    private const ulong GiB = 1UL << 30;
    private const ulong Iova = 64 * GiB;

    private Type1MapBenchmarkHost _host = null!;
    private ulong _va;
    private ulong _size;
    private int _next;

    /// <summary>Bytes mapped, in GiB.</summary>
    [Params(1, 16)]
    public int SizeGiB { get; set; }

    [GlobalSetup(Targets = [nameof(Map_4K), nameof(Unmap_4K)])]
    public void Setup4K() => Setup(Backing.Pages4K);

    [GlobalSetup(Targets = [nameof(Map_Thp), nameof(Unmap_Thp)])]
    public void SetupThp() => Setup(Backing.Thp);

    [GlobalSetup(Targets = [nameof(Map_HugeTlb1G), nameof(Unmap_HugeTlb1G)])]
    public void SetupHugeTlb() => Setup(Backing.HugeTlb1G);

    [GlobalCleanup]
    public void Cleanup() => _host.Process.Exit();

    [IterationSetup(Targets = [nameof(Map_4K), nameof(Map_Thp), nameof(Map_HugeTlb1G)])]
    public void StartMapping() => _next = 0;

    [IterationCleanup(Targets = [nameof(Map_4K), nameof(Map_Thp), nameof(Map_HugeTlb1G)])]
    public void UnmapWhatWasMapped()
    {
        for (var slot = 0; slot < _next; slot++)
        {
            _host.UnmapDma(Slot(slot), _size);
        }
    }

    [IterationSetup(Targets = [nameof(Unmap_4K), nameof(Unmap_Thp), nameof(Unmap_HugeTlb1G)])]
    public void MapEverySlot()
    {
        for (var slot = 0; slot < Copies; slot++)
        {
            _host.MapDma(_va, Slot(slot), _size);
        }

        _next = 0;
    }

    [IterationCleanup(Targets = [nameof(Unmap_4K), nameof(Unmap_Thp), nameof(Unmap_HugeTlb1G)])]
    public void UnmapWhatIsLeft()
    {
        for (var slot = _next; slot < Copies; slot++)
        {
            _host.UnmapDma(Slot(slot), _size);
        }
    }

    [Benchmark(Baseline = true)]
    public long Map_4K() => _host.MapDma(_va, Slot(_next++), _size);

    [Benchmark]
    public long Map_Thp() => _host.MapDma(_va, Slot(_next++), _size);

    [Benchmark]
    public long Map_HugeTlb1G() => _host.MapDma(_va, Slot(_next++), _size);

    [Benchmark]
    public ulong Unmap_4K() => _host.UnmapDma(Slot(_next++), _size);

    [Benchmark]
    public ulong Unmap_Thp() => _host.UnmapDma(Slot(_next++), _size);

    [Benchmark]
    public ulong Unmap_HugeTlb1G() => _host.UnmapDma(Slot(_next++), _size);

    // 16 GiB-aligned slots from 64 GiB: clear of the MSI window, 1 GiB-aligned for the IOPTEs.
    private ulong Slot(int slot) => Iova + ((ulong)slot * 16 * GiB);

    private void Setup(Backing backing)
    {
        _size = (ulong)SizeGiB * GiB;
        _host = new Type1MapBenchmarkHost(Type1MapBenchmarkHost.Nic);
        _va = _host.Populate(_size, backing);

        // Warm: the IOMMU page-table nodes of every slot exist after a first map, and the map and
        // unmap paths are jitted (on the first 2 MiB, which takes the same path), as in any
        // long-running user.
        MapEverySlot();
        _next = Copies;
        UnmapWhatWasMapped();
        Type1MapBenchmarkHost.WarmJit(() =>
        {
            _host.MapDma(_va, Iova, 2UL << 20);
            _host.UnmapDma(Iova, 2UL << 20);
        });
    }
}
