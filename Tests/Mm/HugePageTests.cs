using KernelModel.Mm;
using KernelModel.Tests.Hosting;
using static KernelModel.Tests.Mm.MmTestHelpers;

namespace KernelModel.Tests.Mm;

public class HugePageTests : MachineTestBase
{
    private const MapFlags HugeTlb2M = AnonPrivate | MapFlags.HugeTlb | MapFlags.Huge2MB;
    private const MapFlags HugeTlb1G = AnonPrivate | MapFlags.HugeTlb | MapFlags.Huge1GB;

    private (Machine Machine, UserProcess Process) CreateSut(MachineSpec? spec = null) => BootAndSpawn(spec: spec);

    // ---------------------------------------------------------------- hugetlb

    public static TheoryData<MapFlags, ulong, int, int> HugeTlbSizes => new()
    {
        // flags, huge page size, folio order, page-table level
        { HugeTlb2M, M2, 9, 1 },
        { AnonPrivate | MapFlags.HugeTlb, M2, 9, 1 },   // no size: the default hugepage size (PMD)
        { HugeTlb1G, G1, 18, 2 },
    };

    [Theory]
    [MemberData(nameof(HugeTlbSizes))]
    public void HugeTlb_FaultAnywhereInPage_MapsOneFolioOfThatOrder(MapFlags flags, ulong size, int order, int level)
    {
        var (machine, process) = CreateSut();
        var va = process.MustMmap(size, flags: flags);
        var free = machine.Memory.FreePages;

        process.MustWrite(va + size - 1, 0xee);

        var (pte, mappedLevel) = process.Leaf(va);
        Assert.Equal(level, mappedLevel);
        Assert.Equal(order, pte.Folio!.Order);
        Assert.Equal(FolioFlags.Hugetlb, pte.Folio.Flags & FolioFlags.Hugetlb);
        Assert.Same(pte.Folio, process.FolioAt(va + size / 2));
        Assert.Equal(free - (size >> 12), machine.Memory.FreePages);
        Assert.Equal(0UL, va & (size - 1));
        Assert.Equal([0xee], process.MustRead(va + size - 1, 1));
    }

    [Fact]
    public void HugeTlb_LengthNotMultipleOfHugePage_RoundsUpToHugePage()
    {
        var (_, process) = CreateSut();

        var va = process.MustMmap(K4, flags: HugeTlb2M);

        var vma = Assert.Single(process.Mm.Vmas);
        Assert.Equal(M2, vma.Length);
        Assert.Equal(21, vma.HugetlbShift);
        Assert.Equal(VmFlags.HugeTlb, vma.Flags & VmFlags.HugeTlb);
        Assert.Equal(0UL, va & (M2 - 1));
    }

    public static TheoryData<ulong, ulong> MisalignedHugeTlbUnmaps => new()
    {
        // offset into a 4 MiB (two 2 MiB pages) mapping, length
        { K4, M2 },       // start inside the first huge page
        { 0, M2 + K4 },   // end inside the second huge page
        { M1, M2 },       // both ends inside
    };

    [Theory]
    [MemberData(nameof(MisalignedHugeTlbUnmaps))]
    public void Munmap_HugeTlbRangeNotOnHugeBoundary_ReturnsEinvalAndKeepsMapping(ulong offset, ulong length)
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(2 * M2, flags: HugeTlb2M | MapFlags.Populate);

        var result = process.Munmap(va + offset, length);

        Assert.Equal(-(int)Errno.EINVAL, result);
        var vma = Assert.Single(process.Mm.Vmas);
        Assert.Equal((va, va + 2 * M2), (vma.Start, vma.End));
        Assert.Equal(1, process.Leaf(va).Level);
        Assert.Equal(1, process.Leaf(va + M2).Level);
    }

    [Fact]
    public void Munmap_HugeTlbOnHugeBoundary_FreesThatHugePage()
    {
        var (machine, process) = CreateSut();
        var va = process.MustMmap(2 * M2, flags: HugeTlb2M | MapFlags.Populate);
        var free = machine.Memory.FreePages;
        var second = process.FolioAt(va + M2);

        var result = process.Munmap(va + M2, M2);

        Assert.Equal(0, result);
        Assert.True(second.IsFree);
        Assert.Equal(free + 512, machine.Memory.FreePages);
        Assert.Equal(9, process.FolioAt(va).Order);
    }

    public static TheoryData<string, Func<UserProcess, ulong, int>> SplittingCallsInsideHugePage => new()
    {
        { "mprotect", (p, va) => p.Mprotect(va + K4, K4, Prot.Read) },
        { "mprotect to middle", (p, va) => p.Mprotect(va, M1, Prot.Read) },
        { "madvise hugepage", (p, va) => p.Madvise(va + K4, K4, Madvise.HugePage) },
        { "madvise dontneed, unaligned start", (p, va) => p.Madvise(va + K4, M2, Madvise.DontNeed) },
    };

    [Theory]
    [MemberData(nameof(SplittingCallsInsideHugePage))]
    public void SplittingCall_InsideHugeTlbPage_ReturnsEinvalAndKeepsTheHugeMapping(string what, Func<UserProcess, ulong, int> call)
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(2 * M2, flags: HugeTlb2M | MapFlags.Populate);
        var folio = process.FolioAt(va);

        var result = call(process, va);

        Assert.True(result == -(int)Errno.EINVAL, $"{what}: {result}");
        var vma = Assert.Single(process.Mm.Vmas);
        Assert.Equal((va, va + 2 * M2, VmFlags.None), (vma.Start, vma.End, vma.Flags & (VmFlags.Locked | VmFlags.HugePage)));
        Assert.Equal(1, process.Leaf(va + K4).Level);
        Assert.Equal(1L, folio.RefCount);
        Assert.Equal(0, process.Mm.LockedVm);
    }

    [Fact]
    public void Mlock_InsideHugeTlbPage_SucceedsWithoutLockingSplittingOrCounting()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(2 * M2, flags: HugeTlb2M);

        // mlock_fixup() leaves hugetlb VMAs alone; __mm_populate() still faults them in.
        var result = process.Mlock(va + M1, K4);

        Assert.Equal(0, result);
        var vma = Assert.Single(process.Mm.Vmas);
        Assert.Equal(VmFlags.None, vma.Flags & VmFlags.Locked);
        Assert.Equal(0, process.Mm.LockedVm);
        Assert.Equal(1, process.Leaf(va).Level);
        Assert.False(process.IsMapped(va + M2));
    }

    [Fact]
    public void Mmap_HugeTlbMapLocked_IsNotLockedOrCounted()
    {
        var (_, process) = CreateSut();

        var va = process.MustMmap(M2, flags: HugeTlb2M | MapFlags.Locked);

        Assert.Equal(VmFlags.None, Assert.Single(process.Mm.Vmas).Flags & VmFlags.Locked);
        Assert.Equal(0, process.Mm.LockedVm);
        Assert.Equal(1, process.Leaf(va).Level);
    }

    [Fact]
    public void Mprotect_HugeTlbOnHugeBoundary_SplitsVmaAndKeepsHugeLeaves()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(2 * M2, flags: HugeTlb2M | MapFlags.Populate);

        var result = process.Mprotect(va + M2, M2, Prot.Read);

        Assert.Equal(0, result);
        Assert.Equal(2, process.Mm.Vmas.Count);
        Assert.Equal((1, true), (process.Leaf(va).Level, process.Leaf(va).Pte.Writable));
        Assert.Equal((1, false), (process.Leaf(va + M2).Level, process.Leaf(va + M2).Pte.Writable));
    }

    [Fact]
    public void Madvise_DontNeedHugeTlbShortOfAHugePage_ZapsNothing()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(2 * M2, flags: HugeTlb2M | MapFlags.Populate);

        // madvise_dontneed_free_valid_vma(): the end is aligned down to the huge page size.
        var result = process.Madvise(va, M2 + M1, Madvise.DontNeed);

        Assert.Equal(0, result);
        Assert.False(process.IsMapped(va));
        Assert.Equal(1, process.Leaf(va + M2).Level);
    }

    [Fact]
    public void HugeTlb_Ppc64DefaultSize_Is16MiBFolioOfOrder8()
    {
        var (_, process) = CreateSut(MachineSpec.Ppc64);
        var va = process.MustMmap(M16, flags: AnonPrivate | MapFlags.HugeTlb | MapFlags.Populate);

        var (pte, level) = process.Leaf(va + M16 - K64);

        Assert.Equal(1, level);
        Assert.Equal(8, pte.Folio!.Order);
        Assert.Equal(-(long)Errno.EINVAL, process.Mmap(0, G1, Rw, HugeTlb1G));
    }

    // ---------------------------------------------------------------- THP

    [Fact]
    public void AnonymousFault_MadviseHugePage_MapsPmdSizedTransHugeFolio()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(4 * M2);
        process.Madvise(va, 4 * M2, Madvise.HugePage);

        process.MustWrite(va + M2 + 5, 1);

        var (pte, level) = process.Leaf(va + M2);
        Assert.Equal(1, level);
        Assert.Equal(9, pte.Folio!.Order);
        Assert.Equal(FolioFlags.TransHuge | FolioFlags.Anon, pte.Folio.Flags & (FolioFlags.TransHuge | FolioFlags.Anon));
        Assert.Equal(512, process.Mm.RssPages);
        Assert.False(process.IsMapped(va));
    }

    [Fact]
    public void AnonymousFault_WithoutMadvise_MapsBasePages()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(4 * M2);

        process.MustWrite(va + M2, 1);

        Assert.Equal((0, 0), (process.Leaf(va + M2).Level, process.FolioAt(va + M2).Order));
        Assert.Equal(1, process.Mm.RssPages);
    }

    [Fact]
    public void AnonymousFault_ThpAlwaysButNoHugePage_MapsBasePages()
    {
        var (_, process) = CreateSut(MachineSpec.Default with { Thp = ThpMode.Always });
        var va = process.MustMmap(2 * M2);
        process.Madvise(va, 2 * M2, Madvise.NoHugePage);

        process.MustWrite(va, 1);

        Assert.Equal(0, process.FolioAt(va).Order);
    }

    [Fact]
    public void AnonymousFault_ThpAlways_MapsTransHugeWithoutMadvise()
    {
        var (_, process) = CreateSut(MachineSpec.Default with { Thp = ThpMode.Always });
        var va = process.MustMmap(2 * M2);

        process.MustWrite(va, 1);

        Assert.Equal(9, process.FolioAt(va).Order);
    }

    [Fact]
    public void Munmap_PartOfThp_SplitsPmdAndKeepsFolioUntilLastPageGoes()
    {
        var (machine, process) = CreateSut();
        var va = process.MustMmap(M2);
        process.Madvise(va, M2, Madvise.HugePage);
        process.MustWrite(va + M1 + 3, 0x42);
        var folio = process.FolioAt(va);
        var free = machine.Memory.FreePages;

        var first = process.Munmap(va, M1);
        var afterFirst = (folio.IsFree, folio.RefCount, machine.Memory.FreePages, Level: process.Leaf(va + M1).Level);
        var data = process.MustRead(va + M1 + 3, 1);
        var second = process.Munmap(va + M1, M1);

        Assert.Equal((0, 0), (first, second));
        Assert.Equal((false, 256L, free, 0), afterFirst);
        Assert.Equal([0x42], data);
        Assert.True(folio.IsFree);
        Assert.Equal(free + 512, machine.Memory.FreePages);
        Assert.Equal(0, process.Mm.RssPages);
    }

    [Fact]
    public void Mprotect_PartOfThp_SplitsAndOnlyThatPartIsReadOnly()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(M2);
        process.Madvise(va, M2, Madvise.HugePage);
        process.MustWrite(va, 1);

        var result = process.Mprotect(va + M1, M1, Prot.Read);

        Assert.Equal(0, result);
        Assert.Equal(1, process.WriteMemory(va + M1 - 1, [2]));
        Assert.Equal(-(long)Errno.EFAULT, process.WriteMemory(va + M1, [2]));
        Assert.Equal(9, process.FolioAt(va + M1).Order);
    }
}
