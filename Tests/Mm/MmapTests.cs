using KernelModel.Mm;
using KernelModel.Tests.Hosting;
using static KernelModel.Tests.Mm.MmTestHelpers;

namespace KernelModel.Tests.Mm;

public class MmapTests : MachineTestBase
{
    private (Machine Machine, UserProcess Process) CreateSut(ProcessOptions? options = null) => BootAndSpawn(options);

    // ---------------------------------------------------------------- mmap

    public static TheoryData<ulong, ulong, Prot, MapFlags, int, ulong, Errno> MmapErrors => new()
    {
        // addr, length, prot, flags, fd, offset, errno
        { 0, 0, Rw, AnonPrivate, -1, 0, Errno.EINVAL },                                  // zero length
        { 0, K4, (Prot)0x10, AnonPrivate, -1, 0, Errno.EINVAL },                          // unknown prot bit
        { 0, K4, Rw, MapFlags.Anonymous, -1, 0, Errno.EINVAL },                           // neither shared nor private
        { 0, K4, Rw, MapFlags.Private, -1, 0, Errno.EBADF },                              // file mapping with fd -1
        { 0, K4, Rw, MapFlags.Shared, 42, 0, Errno.EBADF },                               // fd not open
        { 0, ulong.MaxValue, Rw, AnonPrivate, -1, 0, Errno.ENOMEM },                      // length wraps when aligned
        { 0, 1UL << 62, Rw, AnonPrivate, -1, 0, Errno.ENOMEM },                           // beyond TASK_SIZE
        { K4 + 1, K4, Rw, AnonPrivate | MapFlags.Fixed, -1, 0, Errno.EINVAL },            // MAP_FIXED misaligned
        { 0, K4, Rw, AnonPrivate | MapFlags.HugeTlb | (MapFlags)(16 << 26), -1, 0, Errno.EINVAL }, // 64K hugetlb on x86
    };

    [Theory]
    [MemberData(nameof(MmapErrors))]
    public void Mmap_BadArguments_ReturnsErrnoAndMapsNothing(ulong addr, ulong length, Prot prot, MapFlags flags, int fd, ulong offset, Errno expected)
    {
        var (_, process) = CreateSut();

        var result = process.Mmap(addr, length, prot, flags, fd, offset);

        Assert.Equal(-(long)expected, result);
        Assert.Empty(process.Mm.Vmas);
    }

    [Fact]
    public void Mmap_Anonymous_CreatesOneVmaWithoutTouchingMemory()
    {
        var (machine, process) = CreateSut();
        var free = machine.Memory.FreePages;

        var va = process.MustMmap(3 * K4 + 1);

        var vma = Assert.Single(process.Mm.Vmas);
        Assert.Equal(va, vma.Start);
        Assert.Equal(va + 4 * K4, vma.End);
        Assert.Equal(VmFlags.Read | VmFlags.Write, vma.Flags & (VmFlags.Read | VmFlags.Write | VmFlags.Shared));
        Assert.Equal(va >> 12, vma.PgOff);
        Assert.Equal(free, machine.Memory.FreePages);
        Assert.Equal(0, process.Mm.RssPages);
    }

    [Fact]
    public void Mmap_FixedNoReplaceOverExisting_ReturnsEexist()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(4 * K4);

        var result = process.Mmap(va + K4, K4, Rw, AnonPrivate | MapFlags.FixedNoReplace);

        Assert.Equal(-(long)Errno.EEXIST, result);
        Assert.Single(process.Mm.Vmas);
    }

    [Fact]
    public void Mmap_FixedOverExisting_ReplacesTheMiddleAndItsContents()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(3 * K4);
        process.MustWrite(va + K4, 0x5a);

        var result = process.Mmap(va + K4, K4, Prot.Read, AnonPrivate | MapFlags.Fixed);

        Assert.Equal((long)(va + K4), result);
        Assert.Equal(3, process.Mm.Vmas.Count);
        Assert.Equal([0], process.MustRead(va + K4, 1));
    }

    // ---------------------------------------------------------------- faults

    [Fact]
    public void WriteMemory_UntouchedAnonymousPage_FaultsInOneZeroedPage()
    {
        var (machine, process) = CreateSut();
        var va = process.MustMmap(4 * K4);
        var free = machine.Memory.FreePages;

        process.MustWrite(va + K4 + 10, 1, 2, 3);

        Assert.Equal([0, 1, 2, 3, 0], process.MustRead(va + K4 + 9, 5));
        Assert.Equal(1, process.Mm.RssPages);
        Assert.Equal(free - 1, machine.Memory.FreePages);
        var folio = process.FolioAt(va + K4);
        Assert.Equal(0, folio.Order);
        Assert.Equal(FolioFlags.Anon, folio.Flags & FolioFlags.Anon);
        Assert.Equal(1, folio.RefCount);
        Assert.False(process.IsMapped(va));
    }

    [Fact]
    public void ReadMemory_UntouchedAnonymousPage_ReadsZeroes()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(K4);

        Assert.All(process.MustRead(va, 64), b => Assert.Equal(0, b));
    }

    [Fact]
    public void Mmap_Populate_FaultsInEveryPage()
    {
        var (machine, process) = CreateSut();
        var free = machine.Memory.FreePages;

        var va = process.MustMmap(8 * K4, flags: AnonPrivate | MapFlags.Populate);

        Assert.Equal(8, process.Mm.RssPages);
        Assert.Equal(free - 8, machine.Memory.FreePages);
        Assert.True(process.Leaf(va).Pte.Writable);
        Assert.True(process.IsMapped(va + 7 * K4));
    }

    [Fact]
    public void WriteMemory_ReadOnlyMapping_ReturnsEfaultAndRaisesSigsegv()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(K4, Prot.Read, AnonPrivate | MapFlags.Populate);

        var result = process.WriteMemory(va, [1]);

        Assert.Equal(-(long)Errno.EFAULT, result);
        var signal = Assert.Single(process.Signals);
        Assert.Equal(SignalInfo.SIGSEGV, signal.Signo);
        Assert.Equal(va, signal.Address);
        Assert.Equal([0], process.MustRead(va, 1));
    }

    [Fact]
    public void ReadMemory_Unmapped_ReturnsEfaultAndRaisesSigsegv()
    {
        var (_, process) = CreateSut();

        var result = process.ReadMemory(0x1000_0000, new byte[4]);

        Assert.Equal(-(long)Errno.EFAULT, result);
        Assert.Equal(SignalInfo.SIGSEGV, Assert.Single(process.Signals).Signo);
    }

    [Fact]
    public void WriteMemory_RunsOffTheEndOfAMapping_WritesUpToTheEndThenFaults()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(K4);

        var result = process.WriteMemory(va + K4 - 2, [1, 2, 3, 4]);

        Assert.Equal(-(long)Errno.EFAULT, result);
        Assert.Equal(va + K4, Assert.Single(process.Signals).Address);
        Assert.Equal([1, 2], process.MustRead(va + K4 - 2, 2));
    }

    // ---------------------------------------------------------------- munmap

    [Fact]
    public void Munmap_TwoHolesInSharedMapping_LeavesThreeVmasWithMatchingPgoff()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(5 * K4, flags: AnonShared);
        process.MustWrite(va + 4 * K4, 0x44);

        var first = process.Munmap(va + K4, K4);
        var second = process.Munmap(va + 3 * K4, K4);

        Assert.Equal(0, first);
        Assert.Equal(0, second);
        var vmas = process.Mm.Vmas;
        Assert.Equal(3, vmas.Count);
        Assert.Equal((va, va + K4, 0UL), (vmas[0].Start, vmas[0].End, vmas[0].PgOff));
        Assert.Equal((va + 2 * K4, va + 3 * K4, 2UL), (vmas[1].Start, vmas[1].End, vmas[1].PgOff));
        Assert.Equal((va + 4 * K4, va + 5 * K4, 4UL), (vmas[2].Start, vmas[2].End, vmas[2].PgOff));
        Assert.All(vmas, v => Assert.Same(vmas[0].File, v.File));
        Assert.Equal([0x44], process.MustRead(va + 4 * K4, 1));
    }

    [Fact]
    public void Munmap_MiddleOfPrivateMapping_SplitsAndFreesOnlyTheMiddle()
    {
        var (machine, process) = CreateSut();
        var va = process.MustMmap(4 * K4, flags: AnonPrivate | MapFlags.Populate);
        var free = machine.Memory.FreePages;

        var result = process.Munmap(va + K4, 2 * K4);

        Assert.Equal(0, result);
        var vmas = process.Mm.Vmas;
        Assert.Equal(2, vmas.Count);
        Assert.Equal((va, va + K4, va >> 12), (vmas[0].Start, vmas[0].End, vmas[0].PgOff));
        Assert.Equal((va + 3 * K4, va + 4 * K4, (va >> 12) + 3), (vmas[1].Start, vmas[1].End, vmas[1].PgOff));
        Assert.Equal(free + 2, machine.Memory.FreePages);
        Assert.Equal(2, process.Mm.RssPages);
        Assert.False(process.IsMapped(va + K4));
        Assert.True(process.IsMapped(va + 3 * K4));
    }

    [Fact]
    public void Munmap_AcrossTwoVmas_RemovesTheOverlapOfBoth()
    {
        var (_, process) = CreateSut();
        var low = process.MustMmap(4 * K4);
        var high = (ulong)process.Mmap(low + 4 * K4, 4 * K4, Prot.Read, AnonPrivate | MapFlags.Fixed);

        var result = process.Munmap(low + 2 * K4, 4 * K4);

        Assert.Equal(0, result);
        var vmas = process.Mm.Vmas;
        Assert.Equal(2, vmas.Count);
        Assert.Equal((low, low + 2 * K4), (vmas[0].Start, vmas[0].End));
        Assert.Equal((high + 2 * K4, high + 4 * K4), (vmas[1].Start, vmas[1].End));
    }

    [Fact]
    public void Munmap_NothingMapped_Succeeds()
    {
        var (_, process) = CreateSut();

        Assert.Equal(0, process.Munmap(0x4000_0000, 16 * K4));
    }

    public static TheoryData<ulong, ulong> MunmapEinvalCases => new()
    {
        { 0x4000_0001, K4 },              // addr not page aligned
        { 0x4000_0000, 0 },               // zero length
        { 1UL << 47, K4 },                // at TASK_SIZE
        { 0x4000_0000, ulong.MaxValue },  // length wraps
        { 0x4000_0000, 1UL << 47 },       // runs past TASK_SIZE
    };

    [Theory]
    [MemberData(nameof(MunmapEinvalCases))]
    public void Munmap_BadRange_ReturnsEinval(ulong addr, ulong length)
    {
        var (_, process) = CreateSut();
        process.MustMmap(K4);

        Assert.Equal(-(int)Errno.EINVAL, process.Munmap(addr, length));
        Assert.Single(process.Mm.Vmas);
    }

    [Fact]
    public void Munmap_UnalignedLength_RoundsUpToWholePages()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(3 * K4);

        process.Munmap(va, K4 + 1);

        Assert.Equal(va + 2 * K4, Assert.Single(process.Mm.Vmas).Start);
    }

    // ---------------------------------------------------------------- shared anonymous

    [Fact]
    public void SharedAnonymous_WriteThenRead_UsesOnePageCacheFolio()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(2 * K4, flags: AnonShared);

        process.MustWrite(va + 100, 7, 8);
        var back = process.MustRead(va + 100, 2);

        var vma = Assert.Single(process.Mm.Vmas);
        Assert.Equal([7, 8], back);
        Assert.True((vma.Flags & VmFlags.Shared) != 0);
        Assert.NotNull(vma.File);
        Assert.Equal(0UL, vma.PgOff);
        Assert.Equal(1, vma.File.Mapping.CachedPages);
        var folio = process.FolioAt(va);
        Assert.Equal(FolioFlags.Shmem, folio.Flags & FolioFlags.Shmem);
        Assert.Equal(2, folio.RefCount);
    }

    [Fact]
    public void SharedAnonymous_RefaultAfterDontNeed_SeesTheSameData()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(K4, flags: AnonShared);
        process.MustWrite(va, 0x33);

        var advised = process.Madvise(va, K4, Madvise.DontNeed);

        Assert.Equal(0, advised);
        Assert.False(process.IsMapped(va));
        Assert.Equal([0x33], process.MustRead(va, 1));
    }

    [Fact]
    public void SharedAnonymous_Munmap_FreesThePageCache()
    {
        var (machine, process) = CreateSut();
        var free = machine.Memory.FreePages;
        var live = machine.Memory.LiveFolios;
        var va = process.MustMmap(4 * K4, flags: AnonShared | MapFlags.Populate);
        var populatedFree = machine.Memory.FreePages;
        var file = process.Mm.FindVma(va)!.File!;

        var result = process.Munmap(va, 4 * K4);

        Assert.Equal(0, result);
        Assert.Equal(free - 4, populatedFree);
        Assert.Equal(free, machine.Memory.FreePages);
        Assert.Equal(live, machine.Memory.LiveFolios);
        Assert.True(file.IsReleased);
        Assert.Equal(0, file.Mapping.CachedPages);
    }

    // ---------------------------------------------------------------- mprotect

    [Fact]
    public void Mprotect_ReadOnlyMiddle_SplitsAndWriteThereFaults()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(3 * K4, flags: AnonPrivate | MapFlags.Populate);

        var result = process.Mprotect(va + K4, K4, Prot.Read);

        Assert.Equal(0, result);
        Assert.Equal(3, process.Mm.Vmas.Count);
        Assert.False(process.Leaf(va + K4).Pte.Writable);
        Assert.Equal(1, process.WriteMemory(va, [1]));
        Assert.Equal(-(long)Errno.EFAULT, process.WriteMemory(va + K4, [1]));
        Assert.Equal(1, process.WriteMemory(va + 2 * K4, [1]));
    }

    [Fact]
    public void Mprotect_BackToWritable_WriteSucceedsOnSamePage()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(K4, flags: AnonPrivate | MapFlags.Populate);
        var folio = process.FolioAt(va);
        process.Mprotect(va, K4, Prot.Read);

        var result = process.Mprotect(va, K4, Rw);

        Assert.Equal(0, result);
        process.MustWrite(va, 9);
        Assert.Same(folio, process.FolioAt(va));
        Assert.Empty(process.Signals);
    }

    [Fact]
    public void Mprotect_None_ReadOfPopulatedPageRaisesSigsegv()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(K4, flags: AnonPrivate | MapFlags.Populate);
        process.MustWrite(va, 0x11);

        process.Mprotect(va, K4, Prot.None);
        var read = process.ReadMemory(va, new byte[1]);
        process.Mprotect(va, K4, Prot.Read);

        Assert.Equal(-(long)Errno.EFAULT, read);
        Assert.Equal(SignalInfo.SIGSEGV, Assert.Single(process.Signals).Signo);
        Assert.Equal([0x11], process.MustRead(va, 1));
    }

    public static TheoryData<ulong, ulong, Prot, Errno> MprotectErrors => new()
    {
        // offset from the mapping, length, prot, errno
        { 1, K4, Prot.Read, Errno.EINVAL },            // misaligned
        { 0, K4, (Prot)0x40, Errno.EINVAL },           // unknown prot bit
        { 0, 8 * K4, Prot.Read, Errno.ENOMEM },        // runs into a hole
        { 16 * K4, K4, Prot.Read, Errno.ENOMEM },      // wholly unmapped
    };

    [Theory]
    [MemberData(nameof(MprotectErrors))]
    public void Mprotect_BadRange_ReturnsErrnoAndChangesNothing(ulong offset, ulong length, Prot prot, Errno expected)
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(4 * K4);

        var result = process.Mprotect(va + offset, length, prot);

        Assert.Equal(-(int)expected, result);
        var vma = Assert.Single(process.Mm.Vmas);
        Assert.Equal(VmFlags.Read | VmFlags.Write, vma.Flags & (VmFlags.Read | VmFlags.Write));
    }

    [Fact]
    public void Mprotect_ZeroLength_Succeeds()
    {
        var (_, process) = CreateSut();

        Assert.Equal(0, process.Mprotect(0x4000_0000, 0, Prot.Read));
    }

    // ---------------------------------------------------------------- madvise

    public static TheoryData<ulong, ulong, Madvise, Errno> MadviseErrors => new()
    {
        { 1, K4, Madvise.HugePage, Errno.EINVAL },          // misaligned
        { 0, K4, (Madvise)99, Errno.EINVAL },               // unknown advice
        { 0, 8 * K4, Madvise.HugePage, Errno.ENOMEM },      // runs into a hole
        { 0, ulong.MaxValue, Madvise.HugePage, Errno.EINVAL }, // wraps
    };

    [Theory]
    [MemberData(nameof(MadviseErrors))]
    public void Madvise_BadRange_ReturnsErrno(ulong offset, ulong length, Madvise advice, Errno expected)
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(4 * K4);

        Assert.Equal(-(int)expected, process.Madvise(va + offset, length, advice));
        Assert.Equal(VmFlags.None, Assert.Single(process.Mm.Vmas).Flags & VmFlags.HugePage);
    }

    [Fact]
    public void Madvise_DontNeedOnLockedVma_ReturnsEinval()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(K4, flags: AnonPrivate | MapFlags.Locked);

        Assert.Equal(-(int)Errno.EINVAL, process.Madvise(va, K4, Madvise.DontNeed));
        Assert.True(process.IsMapped(va));
    }

    [Fact]
    public void Madvise_DontNeedOnPrivateAnonymous_FreesPagesAndRefaultsZeroed()
    {
        var (machine, process) = CreateSut();
        var va = process.MustMmap(2 * K4);
        process.MustWrite(va, 0x77);
        process.MustWrite(va + K4, 0x78);
        var free = machine.Memory.FreePages;

        var result = process.Madvise(va, K4, Madvise.DontNeed);

        Assert.Equal(0, result);
        Assert.Equal(free + 1, machine.Memory.FreePages);
        Assert.Equal([0], process.MustRead(va, 1));
        Assert.Equal([0x78], process.MustRead(va + K4, 1));
        Assert.Single(process.Mm.Vmas);
    }

    [Fact]
    public void Madvise_HugePageOnPart_SplitsVmaAndFlagsOnlyThatPart()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(4 * K4);

        var result = process.Madvise(va + 2 * K4, 2 * K4, Madvise.HugePage);

        Assert.Equal(0, result);
        var vmas = process.Mm.Vmas;
        Assert.Equal(2, vmas.Count);
        Assert.Equal(VmFlags.None, vmas[0].Flags & VmFlags.HugePage);
        Assert.Equal(VmFlags.HugePage, vmas[1].Flags & VmFlags.HugePage);
    }
}
