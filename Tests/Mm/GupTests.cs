using KernelModel.Kernel;
using KernelModel.Mm;
using KernelModel.Tests.Hosting;
using static KernelModel.Tests.Mm.MmTestHelpers;

namespace KernelModel.Tests.Mm;

public class GupTests : MachineTestBase
{
    private const FollFlags LongTermWrite = FollFlags.LongTerm | FollFlags.Write;
    private const ulong GpuBar0 = 0xfc000000;

    private (Machine Machine, UserProcess Process) CreateSut() => BootAndSpawn();

    private static KResult<long> Pin(UserProcess process, ulong va, long pages, FollFlags flags, PfnRun[] runs, out int nrRuns) =>
        Gup.PinUserPages(process.Mm, va, pages, flags, runs, out nrRuns);

    private static void UnpinAll(Machine machine, PfnRun[] runs, int nrRuns, bool dirty = false)
    {
        foreach (var run in runs.AsSpan(0, nrRuns))
        {
            Gup.UnpinPages(machine.Memory, run, dirty);
        }
    }

    // Every distinct folio behind the runs, found by walking folio by folio.
    private static HashSet<Folio> FoliosBehind(Machine machine, ReadOnlySpan<PfnRun> runs)
    {
        var folios = new HashSet<Folio>(ReferenceEqualityComparer.Instance);
        foreach (var run in runs)
        {
            var pfn = run.Start;
            while (pfn < run.End)
            {
                Assert.True(machine.Memory.TryGetFolio(pfn, out var folio));
                folios.Add(folio);
                pfn = folio.Head + folio.NrPages;
            }
        }

        return folios;
    }

    [Fact]
    public void PinUserPages_ReadPinOfWriteOnlyMapping_ReturnsEfault()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(K4, Prot.Write, MapFlags.Private | MapFlags.Anonymous | MapFlags.Populate);
        var runs = new PfnRun[1];

        var result = Pin(process, va, 1, FollFlags.LongTerm, runs, out var nrRuns);

        Assert.Equal(Errno.EFAULT, result.Error);
        Assert.Equal(0, nrRuns);
    }

    [Fact]
    public void PinUserPages_PopulatedBasePages_PinsEachPageAndReturnsOneRunPerContiguousStretch()
    {
        var (machine, process) = CreateSut();
        var va = process.MustMmap(8 * K4, flags: AnonPrivate | MapFlags.Populate);
        var runs = new PfnRun[8];

        var pinned = Pin(process, va, 8, LongTermWrite, runs, out var nrRuns);

        Assert.Equal(8, pinned.Value);
        Assert.Equal(8UL, runs.Take(nrRuns).Aggregate(0UL, (n, r) => n + r.Count));
        for (ulong i = 0; i < 8; i++)
        {
            var folio = process.FolioAt(va + i * K4);
            // A small folio's pin is GUP_PIN_COUNTING_BIAS references on top of its mapping's one.
            Assert.Equal((1L, 1L + Folio.PinCountingBias), (folio.PinCount, folio.RefCount));
        }

        UnpinAll(machine, runs, nrRuns);
    }

    [Fact]
    public void PinThenUnpin_MixedMappings_LeavesEveryRefcountAsItWas()
    {
        var (machine, process) = CreateSut();
        var small = process.MustMmap(4 * K4, flags: AnonPrivate | MapFlags.Populate);
        var shared = process.MustMmap(2 * K4, flags: AnonShared | MapFlags.Populate);
        var thp = process.MustMmap(2 * M2);
        process.Madvise(thp, 2 * M2, Madvise.HugePage);
        process.MustWrite(thp, 1);
        process.MustWrite(thp + M2, 1);
        var regions = new[] { (small, 4L), (shared, 2L), (thp, 1024L) };
        var folios = regions.SelectMany(r => Enumerable.Range(0, (int)r.Item2).Select(i => process.FolioAt(r.Item1 + ((ulong)i * K4))))
            .Distinct().ToList();
        var before = folios.Select(f => (f.RefCount, f.PinCount)).ToList();
        var free = machine.Memory.FreePages;
        var runs = new PfnRun[16];

        foreach (var (va, pages) in regions)
        {
            var pinned = Pin(process, va, pages, LongTermWrite, runs, out var nrRuns);
            Assert.Equal(pages, pinned.Value);
            UnpinAll(machine, runs, nrRuns, dirty: true);
        }

        Assert.Equal(before, folios.Select(f => (f.RefCount, f.PinCount)).ToList());
        Assert.Equal(free, machine.Memory.FreePages);
        Assert.All(folios, f => Assert.Equal(FolioFlags.Dirty, f.Flags & FolioFlags.Dirty));
    }

    [Fact]
    public void PinUserPages_OneGibibyteOfThp_TouchesFiveHundredTwelveFolioRecords()
    {
        var (machine, process) = CreateSut();
        var va = process.MustMmap(G1);
        process.Madvise(va, G1, Madvise.HugePage);
        var liveBefore = machine.Memory.LiveFolios;
        var runs = new PfnRun[512];

        var pinned = Pin(process, va, (long)(G1 / K4), LongTermWrite, runs, out var nrRuns);

        Assert.Equal((long)(G1 / K4), pinned.Value);
        var folios = FoliosBehind(machine, runs.AsSpan(0, nrRuns));
        Assert.Equal(512, folios.Count);
        Assert.Equal(liveBefore + 512, machine.Memory.LiveFolios);
        Assert.All(folios, f => Assert.Equal((9, 512L, 513L), (f.Order, f.PinCount, f.RefCount)));
        Assert.InRange(nrRuns, 1, 512);

        UnpinAll(machine, runs, nrRuns);
        Assert.All(folios, f => Assert.Equal((0L, 1L), (f.PinCount, f.RefCount)));
    }

    [Fact]
    public void PinUserPages_HugeTlb1G_OneFolioOneRun()
    {
        var (machine, process) = CreateSut();
        var va = process.MustMmap(G1, flags: AnonPrivate | MapFlags.HugeTlb | MapFlags.Huge1GB | MapFlags.Populate);
        var runs = new PfnRun[4];

        var pinned = Pin(process, va + M2, 1024, LongTermWrite, runs, out var nrRuns);

        Assert.Equal(1024, pinned.Value);
        Assert.Equal(1, nrRuns);
        var folio = Assert.Single(FoliosBehind(machine, runs.AsSpan(0, 1)));
        Assert.Equal((18, 1024L), (folio.Order, folio.PinCount));
        Assert.Equal(folio.Head + 512, runs[0].Start);
        UnpinAll(machine, runs, nrRuns);
    }

    [Fact]
    public void PinUserPages_NotPopulated_FaultsPagesIn()
    {
        var (machine, process) = CreateSut();
        var va = process.MustMmap(4 * K4);
        var runs = new PfnRun[4];

        var pinned = Pin(process, va, 4, FollFlags.LongTerm, runs, out var nrRuns);

        Assert.Equal(4, pinned.Value);
        Assert.Equal(4, process.Mm.RssPages);
        UnpinAll(machine, runs, nrRuns);
    }

    [Fact]
    public void PinUserPages_NoFaultOnUnpopulated_ReturnsEfault()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(K4);

        var pinned = Pin(process, va, 1, FollFlags.NoFault, new PfnRun[1], out var nrRuns);

        Assert.Equal(Errno.EFAULT, pinned.Error);
        Assert.Equal(0, nrRuns);
    }

    [Fact]
    public void PinUserPages_WriteOnReadOnlyMapping_ReturnsEfaultAndPinsNothing()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(K4, Prot.Read, AnonPrivate | MapFlags.Populate);
        var folio = process.FolioAt(va);

        var pinned = Pin(process, va, 1, LongTermWrite, new PfnRun[1], out var nrRuns);

        Assert.Equal(Errno.EFAULT, pinned.Error);
        Assert.Equal(0, nrRuns);
        Assert.Equal((0L, 1L), (folio.PinCount, folio.RefCount));
    }

    [Fact]
    public void PinUserPages_ReadPinOfReadOnlyMapping_Succeeds()
    {
        var (machine, process) = CreateSut();
        var va = process.MustMmap(K4, Prot.Read);
        var runs = new PfnRun[1];

        var pinned = Pin(process, va, 1, FollFlags.LongTerm, runs, out var nrRuns);

        Assert.Equal(1, pinned.Value);
        UnpinAll(machine, runs, nrRuns);
    }

    [Fact]
    public void PinUserPages_DevMemPfnmap_ReturnsEfault()
    {
        var (_, process) = CreateSut();
        var fd = process.Open("/dev/mem");
        var va = process.MustMmap(4 * K4, Rw, MapFlags.Shared, fd, GpuBar0);

        var pinned = Pin(process, va, 4, LongTermWrite, new PfnRun[4], out var nrRuns);

        Assert.Equal(Errno.EFAULT, pinned.Error);
        Assert.Equal(0, nrRuns);
    }

    [Fact]
    public void PinUserPages_RangeRunsIntoHole_ReturnsPagesPinnedBeforeIt()
    {
        var (machine, process) = CreateSut();
        var va = process.MustMmap(2 * K4);
        var runs = new PfnRun[4];

        var pinned = Pin(process, va, 4, LongTermWrite, runs, out var nrRuns);

        Assert.Equal(2, pinned.Value);
        UnpinAll(machine, runs, nrRuns);
    }

    [Fact]
    public void PinUserPages_Unmapped_ReturnsEfault()
    {
        var (_, process) = CreateSut();

        Assert.Equal(Errno.EFAULT, Pin(process, 0x4000_0000, 1, FollFlags.None, new PfnRun[1], out _).Error);
    }

    [Theory]
    [InlineData(0x4000_0000UL, 0L, 1)]
    [InlineData(0x4000_0001UL, 1L, 1)]
    [InlineData(0x4000_0000UL, 1L, 0)]
    public void PinUserPages_BadArguments_ReturnsEinval(ulong va, long pages, int runsLength)
    {
        var (_, process) = CreateSut();

        Assert.Equal(Errno.EINVAL, Pin(process, va, pages, FollFlags.None, new PfnRun[runsLength], out _).Error);
    }

    [Fact]
    public void PinUserPages_RunsBufferFull_StopsAndReturnsPagesPinnedSoFar()
    {
        var (machine, process) = CreateSut();
        var a = process.MustMmap(4 * K4);
        var b = process.MustMmap(4 * K4);
        for (ulong i = 0; i < 4; i++)
        {
            // Interleave the faults so that a's pages are not physically contiguous.
            process.MustWrite(a + i * K4, 1);
            process.MustWrite(b + i * K4, 1);
        }

        var runs = new PfnRun[2];

        var pinned = Pin(process, a, 4, LongTermWrite, runs, out var nrRuns);

        Assert.Equal(2, pinned.Value);
        Assert.Equal(2, nrRuns);
        Assert.Equal(0, process.FolioAt(a + 2 * K4).PinCount);
        UnpinAll(machine, runs, nrRuns);
    }

    [Fact]
    public void Munmap_WhilePinned_PagesSurviveUntilUnpinned()
    {
        var (machine, process) = CreateSut();
        var va = process.MustMmap(2 * K4, flags: AnonPrivate | MapFlags.Populate);
        process.MustWrite(va, 0xab);
        var folios = new[] { process.FolioAt(va), process.FolioAt(va + K4) };
        var runs = new PfnRun[2];
        var pinned = Pin(process, va, 2, LongTermWrite, runs, out var nrRuns);
        var free = machine.Memory.FreePages;

        process.Munmap(va, 2 * K4);
        var afterMunmap = (machine.Memory.FreePages, folios[0].IsFree, folios[0].RefCount);
        var data = new byte[1];
        machine.Memory.Read(new PhysAddr(runs[0].Start.Value * K4), data);
        UnpinAll(machine, runs, nrRuns);

        Assert.Equal(2, pinned.Value);
        Assert.Equal((free, false, Folio.PinCountingBias), afterMunmap);
        Assert.Equal([0xab], data);
        Assert.All(folios, f => Assert.True(f.IsFree));
        Assert.Equal(free + 2, machine.Memory.FreePages);
    }

    [Fact]
    public void Munmap_HalfOfPinnedThp_FolioFreedOnlyAfterUnpinAndRest()
    {
        var (machine, process) = CreateSut();
        var va = process.MustMmap(M2);
        process.Madvise(va, M2, Madvise.HugePage);
        var runs = new PfnRun[1];
        var pinned = Pin(process, va, 512, LongTermWrite, runs, out var nrRuns);
        var folio = process.FolioAt(va);
        var free = machine.Memory.FreePages;

        process.Munmap(va, M1);
        UnpinAll(machine, runs, nrRuns);
        var afterUnpin = (folio.IsFree, folio.RefCount, folio.PinCount);
        process.Munmap(va + M1, M1);

        Assert.Equal(512, pinned.Value);
        Assert.Equal((false, 256L, 0L), afterUnpin);
        Assert.True(folio.IsFree);
        Assert.Equal(free + 512, machine.Memory.FreePages);
    }

    [Fact]
    public void Exit_WithPinnedPages_PagesSurviveUntilUnpinned()
    {
        var (machine, process) = CreateSut();
        var va = process.MustMmap(4 * K4, flags: AnonPrivate | MapFlags.Populate);
        var runs = new PfnRun[4];
        Pin(process, va, 4, LongTermWrite, runs, out var nrRuns);
        var folio = process.FolioAt(va);
        var free = machine.Memory.FreePages;

        process.Exit();
        var afterExit = (folio.IsFree, machine.Memory.FreePages);
        UnpinAll(machine, runs, nrRuns);

        Assert.Equal((false, free), afterExit);
        Assert.True(folio.IsFree);
        Assert.Equal(free + 4, machine.Memory.FreePages);
    }

    [Fact]
    public void UnpinPages_PfnWithoutFolio_Throws()
    {
        var (machine, _) = CreateSut();

        Assert.Throws<InvalidOperationException>(() => Gup.UnpinPages(machine.Memory, new PfnRun(new Pfn(12345), 1), dirty: false));
    }

    // ---------------------------------------------------------------- follow_pfnmap, fixup_user_fault

    [Theory]
    [InlineData(4 * K4, Prot.Read, 1UL)]          // base-page leaves: this page only
    [InlineData(M2, Prot.Read | Prot.Write, 510UL)] // one PMD leaf: to its end
    public void FollowPfnmap_DevMemMapping_ReturnsThePfnWritabilityAndLeafExtent(ulong length, Prot prot, ulong pagesToLeafEnd)
    {
        var (_, process) = CreateSut();
        var fd = process.Open("/dev/mem");
        var va = process.MustMmap(length, prot, MapFlags.Shared, fd, GpuBar0);

        var entry = Gup.FollowPfnmap(process.Mm, va + 2 * K4 + 17);

        Assert.True(entry.IsOk);
        Assert.Equal(new Pfn((GpuBar0 / K4) + 2), entry.Value.Pfn);
        Assert.Equal((prot & Prot.Write) != 0, entry.Value.Writable);
        Assert.Equal(pagesToLeafEnd, entry.Value.PagesToLeafEnd);
    }

    [Fact]
    public void FollowPfnmap_AnonymousMapping_ReturnsEinval()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(K4, flags: AnonPrivate | MapFlags.Populate);

        Assert.Equal(Errno.EINVAL, Gup.FollowPfnmap(process.Mm, va).Error);
        Assert.Equal(Errno.EINVAL, Gup.FollowPfnmap(process.Mm, 0x4000_0000).Error);
    }

    [Fact]
    public void FixupUserFault_UnpopulatedWrite_MapsWritablePage()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(K4);

        var result = Gup.FixupUserFault(process.Mm, va, write: true);

        Assert.True(result.IsOk);
        Assert.True(process.Leaf(va).Pte.Writable);
    }

    [Fact]
    public void FixupUserFault_WriteToReadOnly_ReturnsEfault()
    {
        var (_, process) = CreateSut();
        var va = process.MustMmap(K4, Prot.Read);

        Assert.Equal(Errno.EFAULT, Gup.FixupUserFault(process.Mm, va, write: true).Error);
        Assert.False(process.IsMapped(va));
    }

    [Fact]
    public void FixupUserFault_Hole_ReturnsEfault()
    {
        var (_, process) = CreateSut();

        Assert.Equal(Errno.EFAULT, Gup.FixupUserFault(process.Mm, 0x4000_0000, write: false).Error);
    }

    [Fact]
    public void FixupUserFault_PfnmapFaultHandler_InsertsPfnThenFollowPfnmapFindsIt()
    {
        var (machine, process) = CreateSut();
        Assert.True(machine.TryGetDevice("0000:02:00.0", out var gpu));
        var device = new MmioTestFile(machine, gpu.Mmio[0]);
        var fd = process.Open(MmioTestFile.Path);
        var va = process.MustMmap(4 * K4, Rw, MapFlags.Shared, fd, 0);
        var before = Gup.FollowPfnmap(process.Mm, va + K4);

        var fixup = Gup.FixupUserFault(process.Mm, va + K4, write: true);
        var after = Gup.FollowPfnmap(process.Mm, va + K4);

        Assert.Equal(Errno.EINVAL, before.Error);
        Assert.True(fixup.IsOk);
        Assert.Equal(1, device.Faults);
        Assert.Equal(new Pfn((GpuBar0 / K4) + 1), after.Value.Pfn);
        Assert.True(after.Value.Writable);
    }
}
