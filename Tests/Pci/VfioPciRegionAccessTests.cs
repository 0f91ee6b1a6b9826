using System.Buffers.Binary;
using KernelModel.Kernel;
using KernelModel.Pci.Config;
using static KernelModel.Uapi.VfioUapi;

namespace KernelModel.Tests.Pci;

/// <summary>pread/pwrite of the config space (virtualised), BARs, the ROM and an I/O BAR.</summary>
public sealed class VfioPciRegionAccessTests : PciTestBase
{
    private const int Cfg = VFIO_PCI_CONFIG_REGION_INDEX;

    [Fact]
    public void ConfigRead_Header_ShowsIdsClassAndCapabilityList()
    {
        var sut = CreateSut(devices: PciSut.Nic);
        var p = sut.Process;
        var fd = sut.Fd(PciSut.Nic);

        Assert.Equal(0x1b36, p.ConfigRead16(fd, (int)PciConfigOffset.VendorId));
        Assert.Equal(0x1001, p.ConfigRead16(fd, (int)PciConfigOffset.DeviceId));
        Assert.Equal(0x02000001u, p.ConfigRead32(fd, (int)PciConfigOffset.RevisionId));
        Assert.NotEqual(0, p.ConfigRead16(fd, (int)PciConfigOffset.Status) & (int)PciStatus.CapList);
        Assert.Equal([PciCapId.Pm, PciCapId.Msi, PciCapId.Msix, PciCapId.Exp], WalkCaps(p, fd));
    }

    [Fact]
    public void ConfigRead_MultiFunctionSlot_Function0HeaderTypeHasBit7()
    {
        var sut = CreateSut(devices: [PciSut.Fn0, PciSut.Fn1]);

        Assert.Equal(0x80, ReadByte(sut, PciSut.Fn0, (int)PciConfigOffset.HeaderType));
        Assert.Equal(0x00, ReadByte(sut, PciSut.Fn1, (int)PciConfigOffset.HeaderType));
    }

    public static TheoryData<string, int, uint> BarSizing => new()
    {
        // 64 KiB 32-bit non-prefetchable memory.
        { PciSut.Nic, 0x10, 0xffff0000 },
        // 32 GiB 64-bit prefetchable: low dword has only type bits, high dword the size.
        { PciSut.Gpu, 0x18, 0x0000000c },
        { PciSut.Gpu, 0x1c, 0xfffffff8 },
        // 32 I/O ports.
        { PciSut.Fn0, 0x18, 0xffffffe1 },
        // Unimplemented.
        { PciSut.Nic, 0x14, 0 },
        // 128 KiB ROM: the enable bit is writable too.
        { PciSut.Gpu, 0x30, 0xfffe0001 },
    };

    [Theory]
    [MemberData(nameof(BarSizing))]
    public void ConfigWrite_AllOnesToBar_ReadsBackSizeMaskWithTypeBits(string device, int offset, uint expected)
    {
        var sut = CreateSut(devices: device);
        var fd = sut.Fd(device);

        sut.Process.ConfigWrite32(fd, offset, 0xffffffff);

        Assert.Equal(expected, sut.Process.ConfigRead32(fd, offset));
    }

    [Fact]
    public void ConfigWrite_Bar_NeverReachesTheHardware()
    {
        var sut = CreateSut(devices: PciSut.Nic);

        sut.Process.ConfigWrite32(sut.Fd(PciSut.Nic), 0x10, 0xffffffff);

        Assert.Equal(0xfb000000u, sut.Function(PciSut.Nic).ReadConfigDword(0x10));
    }

    [Fact]
    public void ConfigRead_BarAfterOpen_ShowsTheAssignedAddress()
    {
        var sut = CreateSut(devices: PciSut.Gpu);
        var fd = sut.Fd(PciSut.Gpu);

        Assert.Equal(0xfc000000u, sut.Process.ConfigRead32(fd, 0x10));
        Assert.Equal(0x0000000cu, sut.Process.ConfigRead32(fd, 0x18));
        Assert.Equal(0x40u, sut.Process.ConfigRead32(fd, 0x1c));
    }

    [Fact]
    public void ConfigWrite_ReadOnlyId_IsIgnored()
    {
        var sut = CreateSut(devices: PciSut.Nic);
        var fd = sut.Fd(PciSut.Nic);

        sut.Process.ConfigWrite16(fd, (int)PciConfigOffset.VendorId, 0x8086);

        Assert.Equal(0x1b36, sut.Process.ConfigRead16(fd, (int)PciConfigOffset.VendorId));
    }

    [Fact]
    public void ConfigWrite_BusMaster_ReachesTheHardware()
    {
        var sut = CreateSut(devices: PciSut.Nic);
        var fd = sut.Fd(PciSut.Nic);
        var cmd = sut.Process.ConfigRead16(fd, (int)PciConfigOffset.Command);

        sut.Process.ConfigWrite16(fd, (int)PciConfigOffset.Command, (ushort)(cmd | (ushort)PciCommand.Master));

        Assert.True((sut.Function(PciSut.Nic).Command & PciCommand.Master) != 0);
    }

    [Theory]
    [InlineData(4096UL, 4)]
    [InlineData(4094UL, 4)]
    [InlineData(1UL << 39, 1)]
    public void ConfigRead_BeyondConfigSpace_ReturnsEfault(ulong offset, int length)
    {
        var sut = CreateSut(devices: PciSut.Nic);

        Assert.Equal(-(long)Errno.EFAULT, sut.Process.ReadRegion(sut.Fd(PciSut.Nic), Cfg, offset, new byte[length]));
    }

    [Fact]
    public void ConfigRead_UnalignedSpan_IsSplitIntoAlignedChunks()
    {
        var sut = CreateSut(devices: PciSut.Nic);
        var buffer = new byte[7];

        Assert.Equal(7, sut.Process.ReadRegion(sut.Fd(PciSut.Nic), Cfg, 1, buffer));
        Assert.Equal([0x1b, 0x01, 0x10], buffer[..3]);
    }

    [Fact]
    public void BarWrite_ThroughFd_ReachesTheBarMemory()
    {
        var sut = CreateSut(devices: PciSut.Nic);
        var data = BitConverter.GetBytes(0xcafef00du);

        Assert.Equal(4, sut.Process.WriteRegion(sut.Fd(PciSut.Nic), 0, 0x2000, data));

        var back = new byte[4];
        sut.Function(PciSut.Nic).Bars[0].Region!.Read(0x2000, back);
        Assert.Equal(data, back);
        Assert.Equal(1, sut.Vfio(PciSut.Nic).SlowPathAccesses);
    }

    [Fact]
    public void BarRead_AcrossTheMsixTable_SkipsTheTableBytes()
    {
        var sut = CreateSut(devices: PciSut.Nic);
        var region = sut.Function(PciSut.Nic).Bars[0].Region!;
        region.Write(0x2ffc, [1, 2, 3, 4]);
        region.Write(0x3400, [5, 6, 7, 8]);
        var buffer = new byte[0x408];

        Assert.Equal(0x408, sut.Process.ReadRegion(sut.Fd(PciSut.Nic), 0, 0x2ffc, buffer));

        Assert.Equal([1, 2, 3, 4], buffer[..4]);
        Assert.All(buffer[4..0x404], b => Assert.Equal(0xff, b));
        Assert.Equal([5, 6, 7, 8], buffer[0x404..]);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void BarWrite_IntoTheMsixTable_IsDroppedUnderEitherPolicy(bool mappable)
    {
        var sut = CreateSut(settings: new MachineSettings { MsixMappable = mappable }, devices: PciSut.Nic);
        var region = sut.Function(PciSut.Nic).Bars[0].Region!;
        var before = new byte[16];
        region.Read(0x3000, before);

        Assert.Equal(16, sut.Process.WriteRegion(sut.Fd(PciSut.Nic), 0, 0x3000, new byte[16]));

        var after = new byte[16];
        region.Read(0x3000, after);
        Assert.Equal(before, after);
    }

    [Theory]
    [InlineData(0x10000UL)]
    [InlineData(0x20000UL)]
    public void BarRead_AtOrBeyondTheEnd_ReturnsEinval(ulong offset)
    {
        var sut = CreateSut(devices: PciSut.Nic);

        Assert.Equal(-(long)Errno.EINVAL, sut.Process.ReadRegion(sut.Fd(PciSut.Nic), 0, offset, new byte[4]));
    }

    [Fact]
    public void BarRead_StraddlingTheEnd_IsShortened()
    {
        var sut = CreateSut(devices: PciSut.Nic);

        Assert.Equal(4, sut.Process.ReadRegion(sut.Fd(PciSut.Nic), 0, 0xfffc, new byte[16]));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(VFIO_PCI_VGA_REGION_INDEX)]
    [InlineData(VFIO_PCI_NUM_REGIONS)]
    public void Read_RegionWithoutBacking_ReturnsEinval(int index)
    {
        var sut = CreateSut(devices: PciSut.Nic);

        Assert.Equal(-(long)Errno.EINVAL, sut.Process.ReadRegion(sut.Fd(PciSut.Nic), index, 0, new byte[4]));
    }

    [Fact]
    public void BarRead_MemoryDisabled_ReturnsEio()
    {
        var sut = CreateSut(devices: PciSut.Nic);
        var fd = sut.Fd(PciSut.Nic);
        var cmd = sut.Process.ConfigRead16(fd, (int)PciConfigOffset.Command);
        sut.Process.ConfigWrite16(fd, (int)PciConfigOffset.Command, (ushort)(cmd & ~(ushort)PciCommand.Memory));

        Assert.Equal(-(long)Errno.EIO, sut.Process.ReadRegion(fd, 0, 0, new byte[4]));
    }

    [Fact]
    public void RomRead_StartsWithTheOptionRomSignature()
    {
        var sut = CreateSut(devices: PciSut.Gpu);
        var buffer = new byte[2];

        Assert.Equal(2, sut.Process.ReadRegion(sut.Fd(PciSut.Gpu), VFIO_PCI_ROM_REGION_INDEX, 0, buffer));
        Assert.Equal([0x55, 0xaa], buffer);
    }

    [Fact]
    public void RomWrite_ReturnsEinval()
    {
        var sut = CreateSut(devices: PciSut.Gpu);

        Assert.Equal(-(long)Errno.EINVAL, sut.Process.WriteRegion(sut.Fd(PciSut.Gpu), VFIO_PCI_ROM_REGION_INDEX, 0, new byte[2]));
    }

    [Fact]
    public void IoBar_WriteThenRead_RoundTripsThroughThePorts()
    {
        var sut = CreateSut(devices: [PciSut.Fn0, PciSut.Fn1]);
        var fd = sut.Fd(PciSut.Fn0);

        Assert.Equal(2, sut.Process.WriteRegion(fd, 2, 4, new byte[] { 0x12, 0x34 }));
        var back = new byte[2];
        Assert.Equal(2, sut.Process.ReadRegion(fd, 2, 4, back));

        Assert.Equal([0x12, 0x34], back);
    }

    [Fact]
    public void ZeroLengthRead_ReturnsZero()
    {
        var sut = CreateSut(devices: PciSut.Nic);

        Assert.Equal(0, sut.Process.ReadRegion(sut.Fd(PciSut.Nic), 9, 0, []));
    }

    private static byte ReadByte(PciSut sut, string device, int offset)
    {
        var b = new byte[1];
        Assert.Equal(1, sut.Process.ReadRegion(sut.Fd(device), Cfg, (ulong)offset, b));
        return b[0];
    }

    private static List<PciCapId> WalkCaps(UserProcess p, int fd)
    {
        var caps = new List<PciCapId>();
        var b = new byte[2];
        Assert.Equal(1, p.ReadRegion(fd, Cfg, (ulong)PciConfigOffset.CapabilityList, b.AsSpan(0, 1)));
        var at = b[0];
        while (at != 0)
        {
            Assert.Equal(2, p.ReadRegion(fd, Cfg, at, b));
            caps.Add((PciCapId)b[0]);
            at = b[1];
        }

        return caps;
    }
}
