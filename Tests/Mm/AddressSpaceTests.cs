using KernelModel.Mm;
using KernelModel.Tests.Hosting;
using static KernelModel.Tests.Mm.MmTestHelpers;

namespace KernelModel.Tests.Mm;

public class AddressSpaceTests : MachineTestBase
{
    private const int Pages = 8;

    // Two processes map the test device (pgoff 0 and pgoff 2) and touch every page.
    private (UserProcess A, ulong VaA, UserProcess B, ulong VaB, MmioTestFile Device) CreateSut()
    {
        var machine = Boot();
        Assert.True(machine.TryGetDevice("0000:02:00.0", out var gpu));
        var device = new MmioTestFile(machine, gpu.Mmio[0]);
        var a = machine.Spawn();
        var b = machine.Spawn();
        var vaA = a.MustMmap(Pages * K4, Rw, MapFlags.Shared, a.Open(MmioTestFile.Path), 0);
        var vaB = b.MustMmap(Pages * K4, Rw, MapFlags.Shared, b.Open(MmioTestFile.Path), 2 * K4);
        for (ulong i = 0; i < Pages; i++)
        {
            a.MustRead(vaA + i * K4, 1);
            b.MustRead(vaB + i * K4, 1);
        }

        return (a, vaA, b, vaB, device);
    }

    private static bool[] Mapped(UserProcess process, ulong va) =>
        [.. Enumerable.Range(0, Pages).Select(i => process.IsMapped(va + ((ulong)i * K4)))];

    [Fact]
    public void UnmapMappingRange_PgoffRange_ZapsThosePagesInEveryVmaAndNothingElse()
    {
        var (a, vaA, b, vaB, device) = CreateSut();
        var faults = device.Faults;

        device.Inode.Mapping.UnmapMappingRange(3 * K4, 2 * K4);

        Assert.Equal(2 * Pages, faults);
        // a maps pgoff 0..7: pages 3 and 4 go; b maps pgoff 2..9: its pages 1 and 2 go.
        Assert.Equal([true, true, true, false, false, true, true, true], Mapped(a, vaA));
        Assert.Equal([true, false, false, true, true, true, true, true], Mapped(b, vaB));
        Assert.Equal(2, device.Inode.Mapping.MappedVmaCount);
    }

    [Fact]
    public void UnmapMappingRange_ThenTouch_RefaultsOnlyZappedPages()
    {
        var (a, vaA, _, _, device) = CreateSut();
        device.Inode.Mapping.UnmapMappingRange(3 * K4, 2 * K4);
        var faults = device.Faults;

        for (ulong i = 0; i < Pages; i++)
        {
            a.MustRead(vaA + i * K4, 1);
        }

        Assert.Equal(faults + 2, device.Faults);
        Assert.All(Mapped(a, vaA), Assert.True);
    }

    [Fact]
    public void UnmapMappingRange_ZeroLength_ZapsToTheEnd()
    {
        var (a, vaA, _, _, device) = CreateSut();

        device.Inode.Mapping.UnmapMappingRange(6 * K4, 0);

        Assert.Equal([true, true, true, true, true, true, false, false], Mapped(a, vaA));
    }

    [Fact]
    public void UnmapMappingRange_UnalignedBegin_RoundsLikeTheKernel()
    {
        var (a, vaA, _, _, device) = CreateSut();

        // unmap_mapping_range(): hba = begin >> PAGE_SHIFT, hlen = PAGE_ALIGN(len) >> PAGE_SHIFT.
        device.Inode.Mapping.UnmapMappingRange((1 * K4) + 0x800, K4);

        Assert.Equal([true, false, true, true, true, true, true, true], Mapped(a, vaA));
    }

    [Fact]
    public void UnmapMappingRange_HugeBeginNearEndOfFile_DoesNotThrow()
    {
        var (a, vaA, _, _, device) = CreateSut();

        device.Inode.Mapping.UnmapMappingRange(ulong.MaxValue - 10, 100);

        Assert.All(Mapped(a, vaA), Assert.True);
    }

    [Fact]
    public void UnmapMappingPages_PgoffRange_ZapsThosePages()
    {
        var (a, vaA, _, _, device) = CreateSut();

        device.Inode.Mapping.UnmapMappingPages(0, 2);

        Assert.Equal([false, false, true, true, true, true, true, true], Mapped(a, vaA));
        Assert.True(a.Mm.ZappedEntries >= 2);
    }

    [Fact]
    public void Munmap_OneOfTheMappings_UnlinksItFromTheAddressSpace()
    {
        var (a, vaA, _, _, device) = CreateSut();

        a.Munmap(vaA, Pages * K4);

        var vma = Assert.Single(device.Inode.Mapping.Vmas);
        Assert.NotSame(a.Mm, vma.Mm);
        Assert.Equal(1, device.VmaCloses);
    }
}
