using KernelModel.Mm;
using KernelModel.Tests.Hosting;
using static KernelModel.Tests.Mm.MmTestHelpers;

namespace KernelModel.Tests.Mm;

public class MlockTests : MachineTestBase
{
    private const ulong Limit = 16 * K4;

    private (Machine Machine, UserProcess Process) CreateSut(ulong memlock = Limit, bool capIpcLock = false) =>
        BootAndSpawn(new ProcessOptions { MemlockLimit = memlock, CapIpcLock = capIpcLock });

    [Fact]
    public void Mlock_WithinLimit_LocksPopulatesAndAccounts()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(8 * K4);

        var result = process.Mlock(va, 8 * K4);

        Assert.Equal(0, result);
        Assert.Equal(8, process.Mm.LockedVm);
        Assert.Equal(8, process.Mm.RssPages);
        Assert.Equal(VmFlags.Locked, Assert.Single(process.Mm.Vmas).Flags & VmFlags.Locked);
    }

    [Fact]
    public void Mlock_BeyondLimit_ReturnsEnomemAndKeepsNothing()
    {
        var (machine, process) = CreateSut();
        var va = process.MustMmap(32 * K4);
        var free = machine.Memory.FreePages;

        var result = process.Mlock(va, 32 * K4);

        Assert.Equal(-(int)Errno.ENOMEM, result);
        Assert.Equal(0, process.Mm.LockedVm);
        Assert.Equal(0, process.Mm.RssPages);
        Assert.Equal(free, machine.Memory.FreePages);
        var vma = Assert.Single(process.Mm.Vmas);
        Assert.Equal(VmFlags.None, vma.Flags & VmFlags.Locked);
    }

    [Fact]
    public void Mlock_SecondRangePushesPastLimit_ReturnsEnomemAndKeepsTheFirst()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(32 * K4);
        process.Mlock(va, 12 * K4);

        var result = process.Mlock(va + 12 * K4, 8 * K4);

        Assert.Equal(-(int)Errno.ENOMEM, result);
        Assert.Equal(12, process.Mm.LockedVm);
        Assert.Equal(12, process.Mm.RssPages);
        Assert.Equal(2, process.Mm.Vmas.Count);
    }

    [Fact]
    public void Mlock_AlreadyLockedRange_DoesNotCountTwice()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(16 * K4);
        process.Mlock(va, 10 * K4);

        var result = process.Mlock(va, 16 * K4);

        Assert.Equal(0, result);
        Assert.Equal(16, process.Mm.LockedVm);
    }

    [Fact]
    public void Mlock_CapIpcLock_BypassesLimit()
    {
        var (_, process) = CreateSut(memlock: K4, capIpcLock: true);
        var va = process.MustMmap(64 * K4);

        var result = process.Mlock(va, 64 * K4);

        Assert.Equal(0, result);
        Assert.Equal(64, process.Mm.LockedVm);
    }

    [Fact]
    public void Mlock_ZeroLimitWithoutCapability_ReturnsEperm()
    {
        var (_, process) = CreateSut(memlock: 0);
        var va = process.MustMmap(K4);

        Assert.Equal(-(int)Errno.EPERM, process.Mlock(va, K4));
        Assert.Equal(0, process.Mm.LockedVm);
    }

    [Fact]
    public void Mlock_Hole_ReturnsEnomem()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(2 * K4);

        Assert.Equal(-(int)Errno.ENOMEM, process.Mlock(va, 4 * K4));
        Assert.Equal(0, process.Mm.LockedVm);
    }

    [Fact]
    public void Munlock_LockedRange_UnaccountsAndKeepsPages()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(8 * K4);
        process.Mlock(va, 8 * K4);

        var result = process.Munlock(va, 4 * K4);

        Assert.Equal(0, result);
        Assert.Equal(4, process.Mm.LockedVm);
        Assert.Equal(8, process.Mm.RssPages);
    }

    [Fact]
    public void Munmap_LockedVma_UnaccountsLockedVm()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(8 * K4);
        process.Mlock(va, 8 * K4);

        process.Munmap(va, 2 * K4);
        var afterPartial = process.Mm.LockedVm;
        process.Munmap(va, 8 * K4);

        Assert.Equal(6, afterPartial);
        Assert.Equal(0, process.Mm.LockedVm);
    }

    [Fact]
    public void Mmap_MapLockedBeyondLimit_ReturnsEagainAndMapsNothing()
    {
        var (_, process) = CreateSut();

        var result = process.Mmap(0, 32 * K4, Rw, AnonPrivate | MapFlags.Locked);

        Assert.Equal(-(long)Errno.EAGAIN, result);
        Assert.Empty(process.Mm.Vmas);
        Assert.Equal(0, process.Mm.LockedVm);
    }

    [Fact]
    public void Mmap_MapLockedWithinLimit_PopulatesAndAccounts()
    {
        var (_, process) = CreateSut();

        process.MustMmap(4 * K4, flags: AnonPrivate | MapFlags.Locked);

        Assert.Equal(4, process.Mm.LockedVm);
        Assert.Equal(4, process.Mm.RssPages);
    }

    [Fact]
    public void Mlock_HugeTlbRangeBeyondLimit_StillReturnsEnomem()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(M2, flags: AnonPrivate | MapFlags.HugeTlb);

        // do_mlock() checks the whole length against the limit before mlock_fixup() skips hugetlb.
        Assert.Equal(-(int)Errno.ENOMEM, process.Mlock(va, M2));
        Assert.False(process.IsMapped(va));
    }

    [Fact]
    public void Mlock_PfnmapVma_NeitherFlaggedCountedNorFaultedIn()
    {
        var (machine, process) = CreateSut();
        Assert.True(machine.TryGetDevice("0000:02:00.0", out var gpu));
        var device = new MmioTestFile(machine, gpu.Mmio[0]);
        var va = process.MustMmap(4 * K4, Rw, MapFlags.Shared, process.Open(MmioTestFile.Path));

        var result = process.Mlock(va, 4 * K4);

        Assert.Equal(0, result);
        Assert.Equal(0, process.Mm.LockedVm);
        Assert.Equal(VmFlags.None, Assert.Single(process.Mm.Vmas).Flags & VmFlags.Locked);
        Assert.Equal(0, device.Faults);
    }

    [Fact]
    public void Mmap_PopulateOnPfnmapVma_LeavesFaultingToTheDriver()
    {
        var (machine, process) = CreateSut();
        Assert.True(machine.TryGetDevice("0000:02:00.0", out var gpu));
        var device = new MmioTestFile(machine, gpu.Mmio[0]);

        var va = process.MustMmap(4 * K4, Rw, MapFlags.Shared | MapFlags.Populate, process.Open(MmioTestFile.Path));

        Assert.Equal(0, device.Faults);
        Assert.False(process.IsMapped(va));
    }

    [Fact]
    public void Mmap_MapLockedWithZeroLimit_ReturnsEperm()
    {
        var (_, process) = CreateSut(memlock: 0);

        Assert.Equal(-(long)Errno.EPERM, process.Mmap(0, K4, Rw, AnonPrivate | MapFlags.Locked));
        Assert.Empty(process.Mm.Vmas);
    }

    // ---------------------------------------------------------------- __account_locked_vm

    public static TheoryData<long, long, bool, Errno, long> AccountCases => new()
    {
        // already locked, npages, CAP_IPC_LOCK, errno, locked_vm after
        { 0, 16, false, Errno.None, 16 },
        { 0, 17, false, Errno.ENOMEM, 0 },
        { 10, 6, false, Errno.None, 16 },
        { 10, 7, false, Errno.ENOMEM, 10 },
        { 10, 1000, true, Errno.None, 1010 },
        { 0, long.MaxValue, false, Errno.ENOMEM, 0 },
        { 0, -1, false, Errno.EINVAL, 0 },
    };

    [Theory]
    [MemberData(nameof(AccountCases))]
    public void AccountLockedVm_Increment_ChecksRlimitUnlessCapable(long already, long npages, bool cap, Errno expected, long after)
    {
        var (_, process) = CreateSut(capIpcLock: cap);
        if (already > 0)
        {
            Assert.True(process.Mm.AccountLockedVm(already, increment: true).IsOk);
        }

        var result = process.Mm.AccountLockedVm(npages, increment: true);

        Assert.Equal(expected, result.Error);
        Assert.Equal(after, process.Mm.LockedVm);
    }

    [Fact]
    public void AccountLockedVm_Decrement_AlwaysSucceeds()
    {
        var (_, process) = CreateSut();
        process.Mm.AccountLockedVm(10, increment: true);

        var result = process.Mm.AccountLockedVm(4, increment: false);

        Assert.True(result.IsOk);
        Assert.Equal(6, process.Mm.LockedVm);
    }

    [Fact]
    public void AccountLockedVm_UnlimitedRlimit_NeverFails()
    {
        var (_, process) = CreateSut(memlock: ulong.MaxValue);

        Assert.True(process.Mm.AccountLockedVm(1L << 40, increment: true).IsOk);
    }
}
