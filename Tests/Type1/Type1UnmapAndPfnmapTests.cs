using KernelModel.Kernel;

namespace KernelModel.Tests.Type1;

public sealed class Type1UnmapAndPfnmapTests
{
    private const ulong Iova = 0x1_0000_0000;
    private const ulong MiB = 1UL << 20;
    private const ulong GiB = 1UL << 30;

    [Fact]
    public void UnmapDma_V2RangeSplittingAMapping_ReturnsEinval()
    {
        var sut = Type1Sut.Create();
        sut.Setup(type: 3);
        var va = sut.MapAnonymous(2 * MiB);
        Assert.Equal(0, sut.Map(va, Iova, 2 * MiB));

        Assert.Equal(-(long)Errno.EINVAL, sut.Unmap(Iova + MiB, MiB).Result);
        Assert.Equal(-(long)Errno.EINVAL, sut.Unmap(Iova, MiB).Result);
        Assert.Equal((0L, 2 * MiB), sut.Unmap(Iova, 2 * MiB));
        sut.AssertClean();
    }

    [Fact]
    public void UnmapDma_V1_RemovesWholeMappingsThatStartInside()
    {
        var sut = Type1Sut.Create();
        sut.Setup(type: 1);
        var va = sut.MapAnonymous(2 * MiB);
        Assert.Equal(0, sut.Map(va, Iova, MiB));
        Assert.Equal(0, sut.Map(va + MiB, Iova + MiB, MiB));

        // Starts inside the first mapping: v1 stops there and unmaps nothing.
        Assert.Equal((0L, 0UL), sut.Unmap(Iova + 4096, 4096));
        // Starts at the second one and covers only part of it: the whole mapping goes.
        Assert.Equal((0L, MiB), sut.Unmap(Iova + MiB, 4096));
        Assert.Equal((0L, MiB), sut.Unmap(Iova, 4096));
        Assert.Equal(0, sut.Domain(1).LiveIoptes);
        sut.AssertClean();
    }

    public static TheoryData<string, ulong, ulong, uint, Errno> UnmapErrnoCases => new()
    {
        { "UNMAP_ALL with iova", Iova, 0, 2, Errno.EINVAL },
        { "UNMAP_ALL with size", 0, 4096, 2, Errno.EINVAL },
        { "unknown flag", Iova, 4096, 8, Errno.EINVAL },
        { "dirty bitmap with ALL", 0, 0, 1 | 2, Errno.EINVAL },
        { "size 0", Iova, 0, 0, Errno.EINVAL },
        { "unaligned", Iova + 1, 4096, 0, Errno.EINVAL },
        { "wraps", ulong.MaxValue - 0xfff, 0x2000, 0, Errno.EOVERFLOW },
    };

    [Theory]
    [MemberData(nameof(UnmapErrnoCases))]
    public void UnmapDma_InvalidRequest_ReturnsErrnoAndKeepsMapping(string why, ulong iova, ulong size, uint flags, Errno expected)
    {
        var sut = Type1Sut.Create();
        sut.Setup();
        var va = sut.MapAnonymous(MiB);
        Assert.Equal(0, sut.Map(va, Iova, MiB));
        var ioptes = sut.Domain(1).LiveIoptes;

        var (r, _) = sut.Unmap(iova, size, flags);

        Assert.True(-(long)expected == r, $"{why}: {r}");
        Assert.Equal(ioptes, sut.Domain(1).LiveIoptes);
        Assert.Equal((0L, MiB), sut.Unmap(0, 0, flags: 2));
        sut.AssertClean();
    }

    [Fact]
    public void DirtyPages_StartedTracking_ReportsMappedPagesDirtyOnUnmap()
    {
        var sut = Type1Sut.Create();
        sut.Setup();
        var va = sut.MapAnonymous(MiB);
        var bitmapVa = sut.MapAnonymous(4096);
        Assert.Equal(0, sut.Map(va, Iova, 16 * 4096));
        var start = new byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(start, 8);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(start.AsSpan(4), 1);
        Assert.Equal(0, sut.Process.Ioctl(sut.Container, Type1Sut.DirtyPages, start));

        var unmap = new byte[48];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(unmap, 48);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(unmap.AsSpan(4), 1);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(unmap.AsSpan(8), Iova);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(unmap.AsSpan(16), 16 * 4096);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(unmap.AsSpan(24), 4096);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(unmap.AsSpan(32), 8);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(unmap.AsSpan(40), bitmapVa);
        Assert.Equal(0, sut.Process.Ioctl(sut.Container, Type1Sut.UnmapDma, unmap));

        var bits = new byte[2];
        sut.Process.ReadMemory(bitmapVa, bits);
        Assert.Equal(new byte[] { 0xff, 0xff }, bits);
        sut.AssertClean();
    }

    [Fact]
    public void DirtyPages_V1Container_ReturnsEacces()
    {
        var sut = Type1Sut.Create();
        sut.Setup(type: 1);
        var start = new byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(start, 8);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(start.AsSpan(4), 1);

        Assert.Equal(-(long)Errno.EACCES, sut.Process.Ioctl(sut.Container, Type1Sut.DirtyPages, start));
        sut.AssertClean();
    }

    // ------------------------------------------------------------ the seed scenario

    private static (Type1Sut Sut, int GpuFd, ulong BarVa) MapGpuBarForNic(bool strict)
    {
        var sut = Type1Sut.Create(new MachineSettings { StrictMmioMaps = strict });
        var groups = sut.Setup(3, 1, 2);
        var gpuFd = sut.OpenDevice(groups[2], Type1Sut.GpuName);
        var va = sut.Process.Mmap(0, 16 * MiB, Prot.Read | Prot.Write, MapFlags.Shared, gpuFd, TestVfioDevice.RegionOffset(0));
        Assert.True(va > 0, $"mmap BAR: {va}");
        Assert.Equal(0, sut.Map((ulong)va, Iova, 16 * MiB));
        return (sut, gpuFd, (ulong)va);
    }

    [Fact]
    public void MapDma_OptedInDeviceBar_PeerToPeerDmaLandsInBar()
    {
        var (sut, _, _) = MapGpuBarForNic(strict: true);

        Assert.Equal(4, sut.Machine.Dma(Type1Sut.NicName).Write(Iova + 0x40, "p2p!"u8));

        var bar = new byte[4];
        sut.Gpu.Device.Mmio[0].Read(0x40, bar);
        Assert.Equal("p2p!"u8.ToArray(), bar);
        Assert.Equal(0, sut.Process.Mm.LockedVm);
        Assert.Equal(1, sut.Gpu.NotifierCount);
        Assert.Equal(0, sut.Unmap(Iova, 16 * MiB).Result);
        Assert.Equal(0, sut.Gpu.NotifierCount);
        sut.AssertClean();
    }

    [Fact]
    public void DeviceRelease_StrictMode_DropsMappingSoDmaFaults()
    {
        var (sut, gpuFd, va) = MapGpuBarForNic(strict: true);
        var nicDomain = sut.Domain(1);

        Assert.Equal(0, sut.Process.Close(gpuFd));
        Assert.Equal(0, sut.Process.Munmap(va, 16 * MiB));

        Assert.Equal(0, nicDomain.LiveIoptes);
        Assert.Equal(0, sut.Gpu.NotifierCount);
        Assert.Equal(-(long)Errno.EFAULT, sut.Machine.Dma(Type1Sut.NicName).Write(Iova + 0x40, "late"u8));
        Assert.NotEmpty(sut.Machine.IommuFaults);
        Assert.Empty(sut.Machine.Sanitizer.Reports);
        Assert.Equal((0L, 0UL), sut.Unmap(Iova, 16 * MiB));
        sut.AssertClean();
    }

    [Fact]
    public void DeviceRelease_LegacyMode_MappingSurvivesAndSanitizerReportsUseAfterFree()
    {
        var (sut, gpuFd, va) = MapGpuBarForNic(strict: false);
        Assert.Equal(0, sut.Gpu.NotifierCount);

        Assert.Equal(0, sut.Process.Close(gpuFd));
        Assert.Equal(0, sut.Process.Munmap(va, 16 * MiB));

        Assert.Equal(4, sut.Machine.Dma(Type1Sut.NicName).Write(Iova + 0x40, "late"u8));
        Assert.Empty(sut.Machine.IommuFaults);
        Assert.NotEmpty(sut.Machine.Sanitizer.Reports);
        Assert.Equal((0L, 16 * MiB), sut.Unmap(Iova, 16 * MiB));
        sut.AssertClean();
    }

    [Fact]
    public void MapDma_DevMemVmaStrictMode_ReturnsEfault()
    {
        var sut = Type1Sut.Create();
        sut.Setup();
        var mem = sut.Process.Open("/dev/mem");
        var va = sut.Process.Mmap(0, MiB, Prot.Read | Prot.Write, MapFlags.Shared, mem, 0xfc000000);
        Assert.True(va > 0, $"mmap /dev/mem: {va}");

        Assert.Equal(-(long)Errno.EFAULT, sut.Map((ulong)va, Iova, MiB));
        Assert.Equal(0, sut.Domain(1).LiveIoptes);
        sut.AssertClean();
    }

    [Fact]
    public void MapDma_DevMemVmaLegacyMode_Succeeds()
    {
        var sut = Type1Sut.Create(new MachineSettings { StrictMmioMaps = false });
        sut.Setup();
        var mem = sut.Process.Open("/dev/mem");
        var va = sut.Process.Mmap(0, MiB, Prot.Read | Prot.Write, MapFlags.Shared, mem, 0xfc000000);

        Assert.Equal(0, sut.Map((ulong)va, Iova, MiB));
        Assert.Equal(0, sut.Unmap(Iova, MiB).Result);
        sut.AssertClean();
    }

    [Fact]
    public void MapDma_DeviceWithoutOptIn_ReturnsEfault()
    {
        var sut = Type1Sut.Create();
        var groups = sut.Setup(3, 1);
        var nicFd = sut.OpenDevice(groups[1], Type1Sut.NicName);
        var va = sut.Process.Mmap(0, 64 * 1024, Prot.Read | Prot.Write, MapFlags.Shared, nicFd, TestVfioDevice.RegionOffset(0));
        Assert.True(va > 0);

        Assert.Equal(-(long)Errno.EFAULT, sut.Map((ulong)va, Iova, 64 * 1024));
        Assert.Equal(0, sut.Nic.NotifierCount);
        sut.AssertClean();
    }

    [Fact]
    public void MapDma_GiBAlignedBarRange_MapsOneGiBIopte()
    {
        var sut = Type1Sut.Create();
        var groups = sut.Setup(3, 1, 2);
        var gpuFd = sut.OpenDevice(groups[2], Type1Sut.GpuName);
        const ulong fixedVa = 0x7f00_0000_0000;
        var va = sut.Process.Mmap(fixedVa, GiB, Prot.Read | Prot.Write, MapFlags.Shared | MapFlags.Fixed, gpuFd, TestVfioDevice.RegionOffset(1));
        Assert.Equal((long)fixedVa, va);

        Assert.Equal(0, sut.Map(fixedVa, 4 * GiB, GiB));

        Assert.Equal(1, sut.Domain(1).LiveIoptes);
        Assert.Equal(0, sut.Process.Mm.LockedVm);
        Assert.Equal(0, sut.Unmap(4 * GiB, GiB).Result);
        sut.AssertClean();
    }
}
