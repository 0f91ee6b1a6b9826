using System.Buffers.Binary;
using KernelModel.Kernel;

namespace KernelModel.Tests.Type1;

public sealed class Type1MapTests
{
    private const ulong Iova = 0x1_0000_0000;
    private const ulong MiB = 1UL << 20;

    [Theory]
    [InlineData(1UL, 1L)]   // VFIO_TYPE1_IOMMU
    [InlineData(3UL, 1L)]   // VFIO_TYPE1v2_IOMMU
    [InlineData(4UL, 1L)]   // VFIO_DMA_CC_IOMMU: every domain coherent
    [InlineData(9UL, 1L)]   // VFIO_UNMAP_ALL
    [InlineData(10UL, 1L)]  // VFIO_UPDATE_VADDR
    [InlineData(2UL, 0L)]   // VFIO_SPAPR_TCE_IOMMU
    [InlineData(5UL, 0L)]   // VFIO_EEH
    public void CheckExtension_WithType1Container_AnswersAsKernel(ulong extension, long expected)
    {
        var sut = Type1Sut.Create();
        sut.Setup();

        Assert.Equal(expected, sut.Process.Ioctl(sut.Container, Type1Sut.CheckExtension, extension));
        sut.AssertClean();
    }

    [Fact]
    public void MapDma_AnonymousMemory_DeviceDmaReachesPagesAndUnmapReturnsSize()
    {
        var sut = Type1Sut.Create();
        sut.Setup();
        var va = sut.MapAnonymous(4 * MiB);
        Assert.Equal(6, sut.Process.WriteMemory(va + 0x1000, "hello!"u8));

        Assert.Equal(0, sut.Map(va, Iova, 4 * MiB));
        Assert.Equal(1024, sut.Process.Mm.LockedVm);
        var buf = new byte[6];
        Assert.Equal(6, sut.Machine.Dma(Type1Sut.NicName).Read(Iova + 0x1000, buf));
        Assert.Equal("hello!"u8.ToArray(), buf);
        Assert.Equal(4, sut.Machine.Dma(Type1Sut.NicName).Write(Iova + 0x2000, "dma!"u8));
        var cpu = new byte[4];
        sut.Process.ReadMemory(va + 0x2000, cpu);
        Assert.Equal("dma!"u8.ToArray(), cpu);

        var (r, size) = sut.Unmap(Iova, 4 * MiB);
        Assert.Equal(0, r);
        Assert.Equal(4 * MiB, size);
        Assert.Equal(0, sut.Process.Mm.LockedVm);
        Assert.Equal(0, sut.Domain(1).LiveIoptes);
        Assert.Empty(sut.Machine.Sanitizer.Reports);
        Assert.Equal(0, sut.Process.Munmap(va, 4 * MiB));
        sut.AssertClean();
    }

    [Fact]
    public void MapDma_HugetlbBacked2MiB_MapsOneLargeIopte()
    {
        var sut = Type1Sut.Create();
        sut.Setup();
        var va = sut.Process.Mmap(0, 2 * MiB, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous | MapFlags.HugeTlb | MapFlags.Huge2MB);
        Assert.True(va > 0, $"mmap hugetlb: {va}");

        Assert.Equal(0, sut.Map((ulong)va, Iova, 2 * MiB));
        Assert.Equal(1, sut.Domain(1).LiveIoptes);
        Assert.Equal(0, sut.Unmap(Iova, 2 * MiB).Result);
        Assert.Equal(0, sut.Process.Munmap((ulong)va, 2 * MiB));
        sut.AssertClean();
    }

    public static TheoryData<string, ulong, ulong, ulong, uint, uint, Errno> MapErrnoCases => new()
    {
        { "size 0", 0, Iova, 0, 3, 32, Errno.EINVAL },
        { "unaligned iova", 0, Iova + 0x800, 4096, 3, 32, Errno.EINVAL },
        { "unaligned size", 0, Iova, 4097, 3, 32, Errno.EINVAL },
        { "no READ/WRITE", 0, Iova, 4096, 0, 32, Errno.EINVAL },
        { "unknown flag", 0, Iova, 4096, 3 | 8, 32, Errno.EINVAL },
        { "VADDR with prot", 0, Iova, 4096, 3 | 4, 32, Errno.EINVAL },
        { "argsz short", 0, Iova, 4096, 3, 31, Errno.EINVAL },
        { "iova wraps", 0, ulong.MaxValue - 0xfff, 0x2000, 3, 32, Errno.EOVERFLOW },
        { "vaddr wraps", ulong.MaxValue - 0xfff, Iova, 0x2000, 3, 32, Errno.EOVERFLOW },
        { "in MSI window", 0, 0xfee00000, 4096, 3, 32, Errno.EINVAL },
        { "beyond aperture", 0, 1UL << 48, 4096, 3, 32, Errno.EINVAL },
        { "top page of IOVA space", 0, ulong.MaxValue - 0xfff, 0x1000, 3, 32, Errno.EINVAL },
        { "unmapped vaddr", 0x1000, Iova, 4096, 3, 32, Errno.EFAULT },
    };

    [Theory]
    [MemberData(nameof(MapErrnoCases))]
    public void MapDma_InvalidRequest_ReturnsErrnoAndLeavesNothing(string why, ulong vaddr, ulong iova, ulong size, uint flags, uint argsz, Errno expected)
    {
        var sut = Type1Sut.Create();
        sut.Setup();
        var va = sut.MapAnonymous(MiB);
        var useVaddr = vaddr == 0 ? va : vaddr;

        var r = sut.Process.Ioctl(sut.Container, Type1Sut.MapDma, Type1Sut.DmaMapArg(useVaddr, iova, size, flags, argsz));

        Assert.True(-(long)expected == r, $"{why}: {r}");
        Assert.Equal(0, sut.Domain(1).LiveIoptes);
        Assert.Equal(0, sut.Process.Mm.LockedVm);
        sut.AssertClean();
    }

    [Fact]
    public void MapDma_OverlappingRange_ReturnsEexist()
    {
        var sut = Type1Sut.Create();
        sut.Setup();
        var va = sut.MapAnonymous(2 * MiB);
        Assert.Equal(0, sut.Map(va, Iova, MiB));

        Assert.Equal(-(long)Errno.EEXIST, sut.Map(va + MiB, Iova + MiB - 4096, MiB));
        Assert.Equal(0, sut.Unmap(Iova, MiB).Result);
        sut.AssertClean();
    }

    [Fact]
    public void MapDma_OverMemlockLimit_ReturnsEnomemAndUnpinsEverything()
    {
        var sut = Type1Sut.Create(options: new ProcessOptions { MemlockLimit = MiB });
        sut.Setup();
        var va = sut.MapAnonymous(2 * MiB);
        sut.Process.WriteMemory(va, new byte[2 * MiB]);
        var folios = sut.Machine.Memory.LiveFolios;

        Assert.Equal(-(long)Errno.ENOMEM, sut.Map(va, Iova, 2 * MiB));
        Assert.Equal(0, sut.Process.Mm.LockedVm);
        Assert.Equal(0, sut.Domain(1).LiveIoptes);
        Assert.Equal(folios, sut.Machine.Memory.LiveFolios);
        sut.AssertClean();
    }

    [Fact]
    public void MapDma_OverMemlockLimitWithCapIpcLock_Succeeds()
    {
        var sut = Type1Sut.Create(options: new ProcessOptions { MemlockLimit = MiB, CapIpcLock = true });
        sut.Setup();
        var va = sut.MapAnonymous(2 * MiB);

        Assert.Equal(0, sut.Map(va, Iova, 2 * MiB));
        Assert.Equal(0, sut.Unmap(Iova, 2 * MiB).Result);
        sut.AssertClean();
    }

    [Fact]
    public void MapDma_BeyondDmaEntryLimit_ReturnsEnospc()
    {
        var sut = Type1Sut.Create(new MachineSettings { DmaEntryLimit = 2 });
        sut.Setup();
        var va = sut.MapAnonymous(3 * 4096);
        Assert.Equal(0, sut.Map(va, Iova, 4096));
        Assert.Equal(0, sut.Map(va + 4096, Iova + 4096, 4096));

        Assert.Equal(-(long)Errno.ENOSPC, sut.Map(va + 8192, Iova + 8192, 4096));
        Assert.Equal((0L, 8192UL), sut.Unmap(0, 0, flags: 2));
        sut.AssertClean();
    }

    [Fact]
    public void MapDma_TwoGroupsInOneContainer_BothDomainsTranslate()
    {
        var sut = Type1Sut.Create();
        sut.Setup(3, 1, 2);
        var va = sut.MapAnonymous(MiB);
        sut.Process.WriteMemory(va, "shared"u8);

        Assert.Equal(0, sut.Map(va, Iova, MiB));
        var a = new byte[6];
        var b = new byte[6];
        Assert.Equal(6, sut.Machine.Dma(Type1Sut.NicName).Read(Iova, a));
        Assert.Equal(6, sut.Machine.Dma(Type1Sut.GpuName).Read(Iova, b));
        Assert.Equal(a, b);
        Assert.Equal(0, sut.Unmap(Iova, MiB).Result);
        sut.AssertClean();
    }

    [Fact]
    public void MapDma_UpdateVaddr_OnlyAfterInvalidate()
    {
        var sut = Type1Sut.Create();
        sut.Setup();
        var va = sut.MapAnonymous(MiB);
        Assert.Equal(0, sut.Map(va, Iova, MiB));

        Assert.Equal(-(long)Errno.EINVAL, sut.Map(va, Iova, MiB, flags: 4));
        Assert.Equal((0L, MiB), sut.Unmap(Iova, MiB, flags: 4));
        Assert.Equal(-(long)Errno.ENOENT, sut.Map(va, Iova + 2 * MiB, MiB, flags: 4));
        Assert.Equal(0, sut.Map(va, Iova, MiB, flags: 4));
        Assert.Equal(0, sut.Unmap(Iova, MiB).Result);
        sut.AssertClean();
    }

    [Fact]
    public void DetachGroup_LastGroup_DropsEveryMapping()
    {
        var sut = Type1Sut.Create();
        var groups = sut.Setup();
        var va = sut.MapAnonymous(MiB);
        Assert.Equal(0, sut.Map(va, Iova, MiB));
        var domain = sut.Domain(1);
        Assert.NotEqual(0, domain.LiveIoptes);

        Assert.Equal(0, sut.Process.Close(groups[1]));

        Assert.Equal(0, domain.LiveIoptes);
        Assert.Equal(0, sut.Process.Mm.LockedVm);
        sut.AssertClean();
    }

    [Fact]
    public void GetInfo_ShortArgsz_GrowsArgszWithoutCaps()
    {
        var sut = Type1Sut.Create();
        sut.Setup();
        var info = new byte[24];
        BinaryPrimitives.WriteUInt32LittleEndian(info, 24);

        Assert.Equal(0, sut.Process.Ioctl(sut.Container, Type1Sut.GetInfo, info));

        Assert.True(BinaryPrimitives.ReadUInt32LittleEndian(info) > 24);
        Assert.Equal(3u, BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(4)));
        Assert.Equal(0x40201000UL, BinaryPrimitives.ReadUInt64LittleEndian(info.AsSpan(8)));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(16)));
        sut.AssertClean();
    }

    [Fact]
    public void GetInfo_ArgszBelowMinimum_ReturnsEinval()
    {
        var sut = Type1Sut.Create();
        sut.Setup();
        var info = new byte[24];
        BinaryPrimitives.WriteUInt32LittleEndian(info, 15);

        Assert.Equal(-(long)Errno.EINVAL, sut.Process.Ioctl(sut.Container, Type1Sut.GetInfo, info));
        sut.AssertClean();
    }

    [Fact]
    public void GetInfo_FullArgsz_ReturnsCapabilityChainWithMsiWindowExcluded()
    {
        var sut = Type1Sut.Create();
        sut.Setup();
        var probe = new byte[24];
        BinaryPrimitives.WriteUInt32LittleEndian(probe, 24);
        sut.Process.Ioctl(sut.Container, Type1Sut.GetInfo, probe);
        var info = new byte[BinaryPrimitives.ReadUInt32LittleEndian(probe)];
        BinaryPrimitives.WriteUInt32LittleEndian(info, (uint)info.Length);

        Assert.Equal(0, sut.Process.Ioctl(sut.Container, Type1Sut.GetInfo, info));

        var caps = new Dictionary<ushort, int>();
        for (var at = (int)BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(16)); at != 0; at = (int)BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(at + 4)))
        {
            caps[BinaryPrimitives.ReadUInt16LittleEndian(info.AsSpan(at))] = at;
        }

        Assert.Equal([1, 2, 3], caps.Keys.Order().Select(k => (int)k));
        Assert.Equal(65535u, BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(caps[3] + 8)));
        var range = caps[1];
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(range + 8)));
        Assert.Equal(0UL, BinaryPrimitives.ReadUInt64LittleEndian(info.AsSpan(range + 16)));
        Assert.Equal(0xfedfffffUL, BinaryPrimitives.ReadUInt64LittleEndian(info.AsSpan(range + 24)));
        Assert.Equal(0xfef00000UL, BinaryPrimitives.ReadUInt64LittleEndian(info.AsSpan(range + 32)));
        Assert.Equal((1UL << 48) - 1, BinaryPrimitives.ReadUInt64LittleEndian(info.AsSpan(range + 40)));
        sut.AssertClean();
    }

    [Fact]
    public void GetInfo_CapabilityChain_EightByteAlignedAsUpstreamVfioInfoCapAdd()
    {
        var sut = Type1Sut.Create();
        sut.Setup();
        var info = new byte[256];
        BinaryPrimitives.WriteUInt32LittleEndian(info, (uint)info.Length);

        Assert.Equal(0, sut.Process.Ioctl(sut.Container, Type1Sut.GetInfo, info));

        // vfio_info_cap_add() (Linux 6.6 and later) pads each capability to 8 bytes: MIGRATION
        // (32 bytes) at 24, DMA_AVAIL (12, padded to 16) at 56, so IOVA_RANGE starts at 72.
        Assert.Equal(24u, BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(16)));
        Assert.Equal((ushort)2, BinaryPrimitives.ReadUInt16LittleEndian(info.AsSpan(24)));
        Assert.Equal(56u, BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(24 + 4)));
        Assert.Equal((ushort)3, BinaryPrimitives.ReadUInt16LittleEndian(info.AsSpan(56)));
        Assert.Equal(72u, BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(56 + 4)));
        Assert.Equal((ushort)1, BinaryPrimitives.ReadUInt16LittleEndian(info.AsSpan(72)));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(info.AsSpan(72 + 4)));
        Assert.Equal(4096UL, BinaryPrimitives.ReadUInt64LittleEndian(info.AsSpan(24 + 16)));

        // What a caller with too short a buffer is told to allocate: the same padded size.
        var probe = new byte[24];
        BinaryPrimitives.WriteUInt32LittleEndian(probe, 24);
        Assert.Equal(0, sut.Process.Ioctl(sut.Container, Type1Sut.GetInfo, probe));
        Assert.Equal(24u + 32 + 16 + 16 + (2 * 16), BinaryPrimitives.ReadUInt32LittleEndian(probe));
        sut.AssertClean();
    }
}
