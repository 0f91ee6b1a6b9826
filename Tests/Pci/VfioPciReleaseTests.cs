using System.Buffers.Binary;
using KernelModel.Kernel;
using KernelModel.Vfio;
using NSubstitute;
using static KernelModel.Uapi.VfioUapi;

namespace KernelModel.Tests.Pci;

/// <summary>RFC 07/10: vfio-pci calls the device notifier chain with Release at the last close, before it disables the device.</summary>
public sealed class VfioPciReleaseTests : PciTestBase
{
    [Fact]
    public void LastClose_NotifiesReleaseBeforeDisabling()
    {
        var sut = CreateSut(devices: PciSut.Gpu);
        var vdev = sut.Vfio(PciSut.Gpu);
        var callback = Substitute.For<INotifierCallback>();
        bool? enabledDuringRelease = null;
        callback.Notify(Arg.Any<NotifierBlock>(), (ulong)VfioDeviceEvent.Release, Arg.Any<object?>())
            .Returns(_ =>
            {
                enabledDuringRelease = vdev.IsEnabled;
                return NotifyResult.Ok;
            });
        var block = new NotifierBlock(callback);
        Assert.True(vdev.RegisterNotifier(block).IsOk);

        Assert.Equal(0, sut.Process.Close(sut.Fd(PciSut.Gpu)));

        callback.Received(1).Notify(block, (ulong)VfioDeviceEvent.Release, vdev);
        Assert.True(enabledDuringRelease);
        Assert.False(vdev.IsEnabled);
        Assert.True(vdev.UnregisterNotifier(block).IsOk);
    }

    [Fact]
    public void CloseOfOneOfTwoFds_DoesNotNotify()
    {
        var sut = CreateSut(devices: PciSut.Gpu);
        var vdev = sut.Vfio(PciSut.Gpu);
        var first = sut.Fd(PciSut.Gpu);
        var second = sut.OpenDevice(PciSut.Gpu);
        var callback = Substitute.For<INotifierCallback>();
        var block = new NotifierBlock(callback);
        Assert.True(vdev.RegisterNotifier(block).IsOk);

        Assert.Equal(0, sut.Process.Close(first));
        callback.DidNotReceiveWithAnyArgs().Notify(default!, default, default);

        Assert.Equal(0, sut.Process.Close(second));
        callback.Received(1).Notify(block, (ulong)VfioDeviceEvent.Release, vdev);
        Assert.True(vdev.UnregisterNotifier(block).IsOk);
    }

    [Fact]
    public void CloseWithBarStillMapped_NotifiesOnlyAtMunmap()
    {
        var sut = CreateSut(devices: PciSut.Gpu);
        var vdev = sut.Vfio(PciSut.Gpu);
        var va = sut.MapBar(PciSut.Gpu, 0, 0, 0x1000);
        var callback = Substitute.For<INotifierCallback>();
        var block = new NotifierBlock(callback);
        Assert.True(vdev.RegisterNotifier(block).IsOk);

        Assert.Equal(0, sut.Process.Close(sut.Fd(PciSut.Gpu)));
        callback.DidNotReceiveWithAnyArgs().Notify(default!, default, default);
        Assert.True(vdev.IsEnabled);

        Assert.Equal(0, sut.Process.Munmap(va, 0x1000));
        callback.Received(1).Notify(block, (ulong)VfioDeviceEvent.Release, vdev);
        Assert.True(vdev.UnregisterNotifier(block).IsOk);
    }

    /// <summary>
    /// The seed end to end with the real driver: the NIC DMAs into the GPU's BAR0 through a type1
    /// mapping of the GPU's mmap; the GPU's last close releases it, type1 drops the mapping, and the
    /// NIC's next DMA is an IOMMU fault, not a write into a BAR its user gave up.
    /// </summary>
    [Fact]
    public void LastClose_Type1PeerMapping_IsDroppedAndTheNextPeerDmaFaults()
    {
        var sut = CreateSut(devices: [PciSut.Nic, PciSut.Gpu]);
        var p = sut.Process;
        var va = sut.MapBar(PciSut.Gpu, 0, 0, 0x200000);
        const ulong iova = 0x10000000;
        Assert.Equal(0, p.Ioctl(sut.Container, VFIO_IOMMU_MAP_DMA, DmaMap(va, iova, 0x200000)));
        Assert.Equal(0, p.Munmap(va, 0x200000));
        var dma = sut.Machine.Dma(PciSut.Nic);
        Assert.Equal(4, dma.Write(iova + 0x40, BitConverter.GetBytes(0xfeedu)));

        Assert.Equal(0, p.Close(sut.Fd(PciSut.Gpu)));
        sut.Machine.SystemWorkqueue.Flush();

        Assert.Equal(-(long)Errno.EFAULT, dma.Write(iova + 0x40, BitConverter.GetBytes(0xbadu)));
        Assert.Empty(sut.Machine.Sanitizer.Reports);
        var back = new byte[4];
        sut.Function(PciSut.Gpu).Bars[0].Region!.Read(0x40, back);
        Assert.Equal(0xfeedu, BitConverter.ToUInt32(back));
        Assert.Equal(0, sut.Vfio(PciSut.Gpu).NotifierCount);
    }

    private static byte[] DmaMap(ulong vaddr, ulong iova, ulong size)
    {
        var b = new byte[32];
        BinaryPrimitives.WriteUInt32LittleEndian(b, 32);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(8), vaddr);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(16), iova);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(24), size);
        return b;
    }
}
