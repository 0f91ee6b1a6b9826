using BenchmarkDotNet.Attributes;
using KernelModel.Mm;

namespace KernelModel.Benchmarks;

/// <summary>
/// Pin then unpin 1 GiB of anonymous memory (FOLL_WRITE | FOLL_LONGTERM), as the type1 backend
/// does at VFIO_IOMMU_MAP_DMA and UNMAP_DMA: backed by 4 KiB pages (262,144 folio records),
/// by THP after MADV_HUGEPAGE (512 order-9 folios) or by one 1 GiB hugetlb folio. The memory is
/// faulted in during setup and the runs buffer is preallocated, so only GUP is measured.
/// </summary>
[MemoryDiagnoser]
public class PinBenchmarks
{
    private const ulong G1 = 1UL << 30;
    private const ulong M2 = 2UL << 20;
    private const FollFlags Flags = FollFlags.Write | FollFlags.LongTerm;

    private Machine _machine = null!;
    private UserProcess _process = null!;
    private long _pages;
    private PfnRun[] _runs = [];
    private ulong _basePages;
    private ulong _thp;
    private ulong _hugetlb;

    [GlobalSetup]
    public void Setup()
    {
        _machine = Machine.Boot(MachineSpec.Default);
        _process = _machine.Spawn();
        _pages = (long)(G1 >> _machine.Geometry.PageShift);
        // The worst case is one run per page; pages faulted in order come out contiguous.
        _runs = new PfnRun[_pages];

        const MapFlags anon = MapFlags.Anonymous | MapFlags.Private;
        const Prot rw = Prot.Read | Prot.Write;
        _basePages = Mmap(G1, rw, anon | MapFlags.Populate);

        _thp = Mmap(G1, rw, anon);
        Check(_process.Madvise(_thp, G1, Madvise.HugePage), "madvise");
        for (var va = _thp; va < _thp + G1; va += M2)
        {
            Check(_process.WriteMemory(va, [1]) == 1 ? 0 : -1, "touch THP");
        }

        _hugetlb = Mmap(G1, rw, anon | MapFlags.HugeTlb | MapFlags.Huge1GB | MapFlags.Populate);

        CheckBacking(_basePages, 0);
        CheckBacking(_thp, _machine.Geometry.PmdOrder);
        CheckBacking(_hugetlb, _machine.Geometry.PudOrder);
    }

    [GlobalCleanup]
    public void Cleanup() => _process.Exit();

    [Benchmark(Baseline = true)]
    public long PinUnpin1GiB_4K() => PinUnpin(_basePages);

    [Benchmark]
    public long PinUnpin1GiB_Thp() => PinUnpin(_thp);

    [Benchmark]
    public long PinUnpin1GiB_HugeTlb1G() => PinUnpin(_hugetlb);

    private long PinUnpin(ulong va)
    {
        var pinned = Gup.PinUserPages(_process.Mm, va, _pages, Flags, _runs, out var nrRuns);
        if (!pinned.IsOk || pinned.Value != _pages)
        {
            throw new InvalidOperationException($"pin: {pinned}");
        }

        for (var i = 0; i < nrRuns; i++)
        {
            Gup.UnpinPages(_machine.Memory, _runs[i], dirty: true);
        }

        return pinned.Value;
    }

    private ulong Mmap(ulong length, Prot prot, MapFlags flags)
    {
        var va = _process.Mmap(0, length, prot, flags);
        Check(va < 0 ? va : 0, "mmap");
        return (ulong)va;
    }

    // Every page of the range is present and backed by folios of the expected order.
    private void CheckBacking(ulong va, int order)
    {
        PinUnpin(va);
        var pfn = _runs[0].Start;
        if (!_machine.Memory.TryGetFolio(pfn, out var folio) || folio.Order != order || folio.PinCount != 0)
        {
            throw new InvalidOperationException($"0x{va:x}: expected order-{order} folios, found {folio}");
        }
    }

    private static void Check(long result, string what)
    {
        if (result < 0)
        {
            throw new InvalidOperationException($"{what} failed: {result}");
        }
    }
}
