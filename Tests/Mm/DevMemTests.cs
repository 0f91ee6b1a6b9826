using KernelModel.Mm;
using KernelModel.Tests.Hosting;
using static KernelModel.Tests.Mm.MmTestHelpers;

namespace KernelModel.Tests.Mm;

public class DevMemTests : MachineTestBase
{
    private const ulong NicBar0 = 0xfb000000;

    private (Machine Machine, UserProcess Process, int Fd) CreateSut()
    {
        var (machine, process) = BootAndSpawn();
        var fd = process.Open("/dev/mem");
        Assert.True(fd >= 0, $"open /dev/mem: {fd}");
        return (machine, process, fd);
    }

    private static MmioRegion NicBar(Machine machine)
    {
        Assert.True(machine.TryGetDevice("0000:01:00.0", out var nic));
        return nic.Mmio[0];
    }

    [Fact]
    public void Mmap_MmioRange_IsPfnmapIoAndReadsTheRegionStore()
    {
        var (machine, process, fd) = CreateSut();
        NicBar(machine).Write(0x1010, [0xde, 0xad]);

        var va = process.MustMmap(2 * K4, Prot.Read, MapFlags.Shared, fd, NicBar0);

        var vma = Assert.Single(process.Mm.Vmas);
        Assert.Equal(VmFlags.PfnMap | VmFlags.Io, vma.Flags & (VmFlags.PfnMap | VmFlags.Io));
        Assert.True(vma.IsPfnMap);
        Assert.Equal([0xde, 0xad], process.MustRead(va + 0x1010, 2));
        Assert.Equal(2, process.Mm.RssPages);
    }

    [Fact]
    public void WriteMemory_SharedWritableMmioMapping_ReachesTheRegionStore()
    {
        var (machine, process, fd) = CreateSut();
        var va = process.MustMmap(K4, Rw, MapFlags.Shared, fd, NicBar0 + K4);
        var accesses = NicBar(machine).Accesses;

        process.MustWrite(va + 8, 1, 2, 3, 4);

        var back = new byte[4];
        NicBar(machine).Read(K4 + 8, back);
        Assert.Equal([1, 2, 3, 4], back);
        Assert.Equal(accesses + 2, NicBar(machine).Accesses);
    }

    [Fact]
    public void Mmap_PrivateMmioMapping_IsAllowedAsOnMmuMachines()
    {
        var (machine, process, fd) = CreateSut();
        NicBar(machine).Write(0x20, [0x42]);

        var va = process.MustMmap(K4, Prot.Read, MapFlags.Private, fd, NicBar0);

        Assert.Equal([0x42], process.MustRead(va + 0x20, 1));
    }

    [Fact]
    public void Mmap_Ram_ReturnsEperm()
    {
        var (_, process, fd) = CreateSut();

        Assert.Equal(-(long)Errno.EPERM, process.Mmap(0, K4, Prot.Read, MapFlags.Shared, fd, 0x10_0000));
        Assert.Empty(process.Mm.Vmas);
    }

    [Fact]
    public void Mmap_RangeEndingInRam_ReturnsEperm()
    {
        var (_, process, fd) = CreateSut();

        // The low RAM range ends at 3 GiB.
        Assert.Equal(-(long)Errno.EPERM, process.Mmap(0, 2 * K4, Prot.Read, MapFlags.Shared, fd, (3UL << 30) - K4));
    }

    [Fact]
    public void Munmap_DevMemMapping_ClearsEntriesAndKeepsRegionContents()
    {
        var (machine, process, fd) = CreateSut();
        var va = process.MustMmap(K4, Rw, MapFlags.Shared, fd, NicBar0);
        process.MustWrite(va, 0x5a);

        process.Munmap(va, K4);

        Assert.Equal(0, process.Mm.RssPages);
        var back = new byte[1];
        NicBar(machine).Read(0, back);
        Assert.Equal([0x5a], back);
    }
}
