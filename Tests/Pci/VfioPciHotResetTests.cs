using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Json.Nodes;
using KernelModel.Kernel;
using KernelModel.Uapi;
using static KernelModel.Uapi.VfioUapi;

namespace KernelModel.Tests.Pci;

/// <summary>GET_PCI_HOT_RESET_INFO and PCI_HOT_RESET: dependent devices, group ownership, trylock and zap.</summary>
public sealed class VfioPciHotResetTests : PciTestBase
{
    [Fact]
    public void GetHotResetInfo_ArgszForHeaderOnly_ReturnsEnospcWithTheCount()
    {
        var sut = CreateSut(devices: PciSut.Fn0);
        var buf = HotResetInfoArg(12);

        Assert.Equal(-(long)Errno.ENOSPC, sut.Process.Ioctl(sut.Fd(PciSut.Fn0), VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, buf));
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(buf.AsSpan(8)));
    }

    [Fact]
    public void GetHotResetInfo_DualFunctionSlot_ListsBothFunctionsInGroup3()
    {
        var sut = CreateSut(devices: PciSut.Fn0);
        var buf = HotResetInfoArg(12 + (2 * 8));

        Assert.Equal(0, sut.Process.Ioctl(sut.Fd(PciSut.Fn0), VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, buf));

        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(buf.AsSpan(8)));
        var devices = Enumerable.Range(0, 2).Select(i =>
        {
            UapiStruct.TryReadElement(buf.AsSpan(12), i, out VfioPciDependentDevice d);
            return (d.GroupId, d.Segment, d.Bus, d.Devfn);
        });
        Assert.Equal([(3u, (ushort)0, (byte)3, (byte)0), (3u, (ushort)0, (byte)3, (byte)1)], devices);
    }

    [Fact]
    public void GetHotResetInfo_NicAloneOnItsBus_ListsOnlyItself()
    {
        var sut = CreateSut(devices: PciSut.Nic);
        var buf = HotResetInfoArg(64);

        Assert.Equal(0, sut.Process.Ioctl(sut.Fd(PciSut.Nic), VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, buf));

        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(buf.AsSpan(8)));
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(buf.AsSpan(12)));
    }

    [Fact]
    public void GetHotResetInfo_BusWithoutReset_ReturnsEnodev()
    {
        var sut = CreateSut(NoBusResetSpec(), devices: PciSut.Fn0);

        Assert.Equal(-(long)Errno.ENODEV, sut.Process.Ioctl(sut.Fd(PciSut.Fn0), VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, HotResetInfoArg(64)));
        Assert.Equal(-(long)Errno.ENODEV, HotReset(sut, PciSut.Fn0, sut.GroupFd(3)));
    }

    [Fact]
    public void HotReset_OwningGroupFd_ResetsBothFunctionsAndZapsBothMmaps()
    {
        var sut = CreateSut(devices: [PciSut.Fn0, PciSut.Fn1]);
        var p = sut.Process;
        var va0 = sut.MapBar(PciSut.Fn0, 0, 0, 0x10000);
        var va1 = sut.MapBar(PciSut.Fn1, 0, 0, 0x10000);
        p.Read32(va0);
        p.Read32(va1);

        Assert.Equal(0, HotReset(sut, PciSut.Fn0, sut.GroupFd(3)));

        Assert.Equal(1, sut.Function(PciSut.Fn0).BusResets);
        Assert.Equal(1, sut.Function(PciSut.Fn1).BusResets);
        Assert.Equal(0, p.Mm.RssPages);
        Assert.Equal(0u, p.Read32(va0));
        Assert.Equal(0u, p.Read32(va1));
        Assert.Equal(2, sut.Vfio(PciSut.Fn0).Faults);
        Assert.Empty(p.Signals);
    }

    [Fact]
    public void HotReset_UnopenedSiblingInTheSameGroup_IsStillCoveredByTheGroupFd()
    {
        var sut = CreateSut(devices: PciSut.Fn0);

        Assert.Equal(0, HotReset(sut, PciSut.Fn0, sut.GroupFd(3)));
        Assert.Equal(1, sut.Function(PciSut.Fn1).BusResets);
    }

    [Fact]
    public void HotReset_GroupFdOfAnotherGroup_ReturnsEinvalAndResetsNothing()
    {
        var sut = CreateSut(devices: [PciSut.Fn0, PciSut.Nic]);

        Assert.Equal(-(long)Errno.EINVAL, HotReset(sut, PciSut.Fn0, sut.GroupFd(1)));

        Assert.Equal(0, sut.Function(PciSut.Fn0).BusResets);
        Assert.False(sut.Vfio(PciSut.Fn0).MemoryLock.IsWriteLocked);
    }

    public static TheoryData<string, uint, uint, Errno> BadHotResets => new()
    {
        { "count 0", 0, 0, Errno.EINVAL },
        { "more groups than devices", 0, 3, Errno.EINVAL },
        { "flags", 1, 1, Errno.EINVAL },
    };

    [Theory]
    [MemberData(nameof(BadHotResets))]
    public void HotReset_BadHeader_ReturnsErrno(string what, uint flags, uint count, Errno errno)
    {
        var sut = CreateSut(devices: PciSut.Fn0);
        var fds = Enumerable.Repeat(sut.GroupFd(3), (int)Math.Max(count, 1)).ToArray();

        Assert.True(-(long)errno == HotReset(sut, PciSut.Fn0, fds, flags, count), what);
    }

    [Fact]
    public void HotReset_ArgszBelowHeader_ReturnsEinval()
    {
        var sut = CreateSut(devices: PciSut.Fn0);
        var buf = new byte[16];
        UapiStruct.Write(buf, new VfioPciHotReset { Argsz = 11, Count = 1 });

        Assert.Equal(-(long)Errno.EINVAL, sut.Process.Ioctl(sut.Fd(PciSut.Fn0), VFIO_DEVICE_PCI_HOT_RESET, buf));
    }

    [Fact]
    public void HotReset_FdsBeyondTheBuffer_ReturnsEfault()
    {
        var sut = CreateSut(devices: PciSut.Fn0);
        var buf = new byte[14];
        UapiStruct.Write(buf, new VfioPciHotReset { Argsz = 20, Count = 2 });

        Assert.Equal(-(long)Errno.EFAULT, sut.Process.Ioctl(sut.Fd(PciSut.Fn0), VFIO_DEVICE_PCI_HOT_RESET, buf));
    }

    [Fact]
    public void HotReset_NotAGroupFd_ReturnsEinval()
    {
        var sut = CreateSut(devices: PciSut.Fn0);

        Assert.Equal(-(long)Errno.EINVAL, HotReset(sut, PciSut.Fn0, sut.Process.EventFd(0)));
        Assert.Equal(-(long)Errno.EINVAL, HotReset(sut, PciSut.Fn0, sut.Container));
    }

    [Fact]
    public void HotReset_ClosedFd_ReturnsEbadf()
    {
        var sut = CreateSut(devices: PciSut.Fn0);

        Assert.Equal(-(long)Errno.EBADF, HotReset(sut, PciSut.Fn0, 999));
    }

    [Fact]
    public void HotReset_SiblingNotBoundToVfioPci_ReturnsEinval()
    {
        var sut = CreateSut(devices: PciSut.Fn0);
        Assert.True(sut.Machine.Sysfs.Unbind(PciSut.Fn1).IsOk);

        Assert.Equal(-(long)Errno.EINVAL, HotReset(sut, PciSut.Fn0, sut.GroupFd(3)));
        Assert.Equal(0, sut.Function(PciSut.Fn0).BusResets);
    }

    [Fact]
    public void HotReset_SiblingMemoryLockHeld_ReturnsEbusyAndReleasesWhatItTook()
    {
        var sut = CreateSut(devices: [PciSut.Fn0, PciSut.Fn1]);
        var sibling = sut.Vfio(PciSut.Fn1);
        using var held = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var holder = new Thread(() =>
        {
            sibling.MemoryLock.DownRead();
            held.Set();
            release.Wait();
            sibling.MemoryLock.UpRead();
        });
        holder.Start();
        held.Wait();

        long busy;
        try
        {
            busy = HotReset(sut, PciSut.Fn0, sut.GroupFd(3));
        }
        finally
        {
            release.Set();
            holder.Join();
        }

        Assert.Equal(-(long)Errno.EBUSY, busy);
        Assert.Equal(0, sut.Function(PciSut.Fn0).BusResets);
        Assert.False(sut.Vfio(PciSut.Fn0).MemoryLock.IsWriteLocked);
        Assert.Equal(0, HotReset(sut, PciSut.Fn0, sut.GroupFd(3)));
    }

    [Fact]
    public void HotReset_NicAloneOnItsBus_ResetsItWithItsGroup()
    {
        var sut = CreateSut(devices: PciSut.Nic);

        Assert.Equal(0, HotReset(sut, PciSut.Nic, sut.GroupFd(1)));
        Assert.Equal(1, sut.Function(PciSut.Nic).BusResets);
    }

    [Fact]
    public void LastClose_DualFunctionWithoutFlr_BusResetOnceBothAreClosed()
    {
        var sut = CreateSut(devices: [PciSut.Fn0, PciSut.Fn1]);

        Assert.Equal(0, sut.Process.Close(sut.Fd(PciSut.Fn0)));
        Assert.Equal(0, sut.Function(PciSut.Fn0).BusResets);
        Assert.True(sut.Vfio(PciSut.Fn0).NeedsReset);

        Assert.Equal(0, sut.Process.Close(sut.Fd(PciSut.Fn1)));
        Assert.Equal(1, sut.Function(PciSut.Fn0).BusResets);
        Assert.Equal(1, sut.Function(PciSut.Fn1).BusResets);
        Assert.False(sut.Vfio(PciSut.Fn0).NeedsReset);
    }

    private static byte[] HotResetInfoArg(uint argsz)
    {
        var buf = new byte[Math.Max(argsz, 12)];
        UapiStruct.Write(buf, new VfioPciHotResetInfo { Argsz = argsz });
        return buf;
    }

    private static long HotReset(PciSut sut, string device, params int[] groupFds) => HotReset(sut, device, groupFds, 0, (uint)groupFds.Length);

    private static long HotReset(PciSut sut, string device, int[] groupFds, uint flags, uint count)
    {
        var buf = new byte[12 + (4 * groupFds.Length)];
        UapiStruct.Write(buf, new VfioPciHotReset { Argsz = (uint)buf.Length, Flags = flags, Count = count });
        for (var i = 0; i < groupFds.Length; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(buf.AsSpan(12 + (4 * i)), groupFds[i]);
        }

        return sut.Process.Ioctl(sut.Fd(device), VFIO_DEVICE_PCI_HOT_RESET, buf);
    }

    /// <summary>The default machine with bus 03's platform unable to reset it.</summary>
    private static MachineSpec NoBusResetSpec()
    {
        var spec = MachineSpec.Default;
        return spec with
        {
            Devices = [.. spec.Devices.Select(d => d.Name.StartsWith("0000:03:", StringComparison.Ordinal) ? d with { Properties = WithBusResetOff(d.Properties) } : d)],
        };

        static JsonElement WithBusResetOff(JsonElement properties)
        {
            var node = JsonNode.Parse(properties.GetRawText())!.AsObject();
            node["busReset"] = false;
            return JsonDocument.Parse(node.ToJsonString()).RootElement;
        }
    }
}
