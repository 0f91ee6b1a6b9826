using System.Buffers.Binary;
using System.Runtime.InteropServices;
using KernelModel.Kernel;
using KernelModel.Pci;
using KernelModel.Pci.VfioPci;
using KernelModel.Tests.Hosting;
using KernelModel.Tests.Vfio;
using KernelModel.Uapi;
using static KernelModel.Uapi.VfioUapi;

namespace KernelModel.Tests.Pci;

/// <summary>
/// A booted machine whose PCI devices are bound to vfio-pci, one process that opened the container
/// (type1 v2), the groups of the devices it asked for and their device fds.
/// </summary>
public sealed class PciSut
{
    public const string Nic = "0000:01:00.0";
    public const string Gpu = "0000:02:00.0";
    public const string Fn0 = "0000:03:00.0";
    public const string Fn1 = "0000:03:00.1";
    public const string Ppc64Nic = "0001:01:00.0";

    internal PciSut(Machine machine, UserProcess process)
    {
        Machine = machine;
        Process = process;
    }

    public Machine Machine { get; }

    public UserProcess Process { get; }

    public int Container { get; internal set; } = -1;

    public Dictionary<int, int> Groups { get; } = [];

    public Dictionary<string, int> Fds { get; } = [];

    public ulong PageSize => Machine.Geometry.PageSize;

    public int Fd(string device) => Fds[device];

    public int GroupFd(int group) => Groups[group];

    public VfioPciDevice Vfio(string device) =>
        Machine.TryGetDevice(device, out var d) && d.DriverData is VfioPciDevice v ? v : throw new InvalidOperationException($"{device} is not bound to vfio-pci");

    public PciFunction Function(string device) =>
        Machine.TryGetDevice(device, out var d) && PciHost.TryGetFunction(d, out var f) ? f : throw new InvalidOperationException($"{device} is not a PCI function");

    /// <summary>Opens one more device fd of an already opened group.</summary>
    public int OpenDevice(string device)
    {
        var group = Machine.TryGetDevice(device, out var d) ? d.IommuGroup!.Id.Value : throw new InvalidOperationException(device);
        var fd = (int)Process.GetDeviceFd(Groups[group], device);
        Assert.True(fd >= 0, $"GET_DEVICE_FD {device}: {fd}");
        Fds[device] = fd;
        return fd;
    }

    /// <summary>mmap of <paramref name="length"/> bytes at <paramref name="offset"/> into BAR <paramref name="index"/>; asserts success.</summary>
    public ulong MapBar(string device, int index, ulong offset, ulong length, Prot prot = Prot.Read | Prot.Write)
    {
        var va = Process.MmapRegion(Fd(device), index, offset, length, prot);
        Assert.True(va > 0, $"mmap BAR{index} of {device} at 0x{offset:x}+0x{length:x}: {va}");
        return (ulong)va;
    }

    public static long RegionOffset(int index, ulong offset = 0) => (long)(VfioPciRegions.IndexToOffset(index) + offset);
}

/// <summary>Base of the vfio-pci tests: builds <see cref="PciSut"/>s and checks every machine for oopses.</summary>
public abstract class PciTestBase : MachineTestBase
{
    /// <summary>
    /// Boots <paramref name="spec"/> (default x86_64) with <paramref name="settings"/>, binds every PCI
    /// device to vfio-pci, and opens the container, the groups of <paramref name="devices"/> and
    /// each device.
    /// </summary>
    protected PciSut CreateSut(MachineSpec? spec = null, MachineSettings? settings = null, params string[] devices)
    {
        spec ??= MachineSpec.Default;
        if (settings is not null)
        {
            spec = spec with { Settings = settings };
        }

        var machine = Boot(spec);
        foreach (var d in machine.Devices.Where(d => d.Bus == "pci"))
        {
            Assert.Equal(KResult.Ok, machine.Sysfs.Bind(d.Name, "vfio-pci"));
        }

        var sut = new PciSut(machine, machine.Spawn());
        if (devices.Length == 0)
        {
            return sut;
        }

        sut.Container = sut.Process.Open("/dev/vfio/vfio");
        Assert.True(sut.Container >= 0);
        foreach (var name in devices)
        {
            Assert.True(machine.TryGetDevice(name, out var device));
            var group = device.IommuGroup!.Id.Value;
            if (!sut.Groups.ContainsKey(group))
            {
                var fd = sut.Process.Open($"/dev/vfio/{group}");
                Assert.True(fd >= 0, $"open group {group}: {fd}");
                Assert.Equal(0, sut.Process.SetContainer(fd, sut.Container));
                if (sut.Groups.Count == 0)
                {
                    Assert.Equal(0, sut.Process.SetIommu(sut.Container, VFIO_TYPE1v2_IOMMU));
                }

                sut.Groups[group] = fd;
            }

            sut.OpenDevice(name);
        }

        return sut;
    }

    protected static MachineSettings OldMsixPolicy => new() { MsixMappable = false };
}

/// <summary>The vfio device uAPI as a user program calls it (struct bytes as in linux/vfio.h).</summary>
internal static class PciUapi
{
    public static (long Result, VfioDeviceInfo Info) GetDeviceInfo(this UserProcess p, int fd, uint argsz = 20)
    {
        var buf = new byte[Math.Max(argsz, 20u)];
        var info = new VfioDeviceInfo { Argsz = argsz, CapOffset = 0xdead };
        UapiStruct.Write(buf, info);
        var r = p.Ioctl(fd, VFIO_DEVICE_GET_INFO, buf);
        UapiStruct.TryRead(buf, out info);
        return (r, info);
    }

    /// <summary>GET_REGION_INFO with argsz <paramref name="argsz"/> in a buffer of that size.</summary>
    public static (long Result, VfioRegionInfo Info, byte[] Buffer) GetRegionInfo(this UserProcess p, int fd, uint index, uint argsz = 32)
    {
        var buf = new byte[Math.Max(argsz, 32u)];
        UapiStruct.Write(buf, new VfioRegionInfo { Argsz = argsz, Index = index });
        var r = p.Ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, buf);
        UapiStruct.TryRead(buf, out VfioRegionInfo info);
        return (r, info, buf);
    }

    /// <summary>GET_REGION_INFO the way users do it: ask, and ask again with the argsz the kernel wants.</summary>
    public static (VfioRegionInfo Info, byte[] Buffer) GetRegionInfoWithCaps(this UserProcess p, int fd, uint index)
    {
        var (r, info, buf) = p.GetRegionInfo(fd, index);
        Assert.Equal(0, r);
        if (info.Argsz > 32)
        {
            (r, info, buf) = p.GetRegionInfo(fd, index, info.Argsz);
            Assert.Equal(0, r);
        }

        return (info, buf);
    }

    /// <summary>The capability chain of an info buffer: (id, version, offset) in chain order.</summary>
    public static List<(ushort Id, ushort Version, int Offset)> Caps(byte[] buffer, uint capOffset)
    {
        var caps = new List<(ushort, ushort, int)>();
        var at = (int)capOffset;
        while (at != 0)
        {
            caps.Add((BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(at)), BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(at + 2)), at));
            at = (int)BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(at + 4));
        }

        return caps;
    }

    /// <summary>The areas of a sparse-mmap capability at <paramref name="at"/>.</summary>
    public static List<(ulong Offset, ulong Size)> SparseAreas(byte[] buffer, int at)
    {
        var n = BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(at + 8));
        var areas = new List<(ulong, ulong)>();
        for (var i = 0; i < n; i++)
        {
            UapiStruct.TryReadElement(UapiStruct.Trailing<VfioRegionInfoCapSparseMmap>(buffer.AsSpan(at)), i, out VfioRegionSparseMmapArea area);
            areas.Add((area.Offset, area.Size));
        }

        return areas;
    }

    public static (long Result, VfioIrqInfo Info) GetIrqInfo(this UserProcess p, int fd, uint index, uint argsz = 16)
    {
        var buf = new byte[16];
        UapiStruct.Write(buf, new VfioIrqInfo { Argsz = argsz, Index = index });
        var r = p.Ioctl(fd, VFIO_DEVICE_GET_IRQ_INFO, buf);
        UapiStruct.TryRead(buf, out VfioIrqInfo info);
        return (r, info);
    }

    /// <summary>SET_IRQS with <paramref name="data"/> after the header; argsz defaults to the whole buffer.</summary>
    public static long SetIrqs(this UserProcess p, int fd, uint flags, uint index, uint start, uint count, ReadOnlySpan<byte> data = default, uint? argsz = null)
    {
        var buf = new byte[20 + data.Length];
        UapiStruct.Write(buf, new VfioIrqSet { Argsz = argsz ?? (uint)buf.Length, Flags = flags, Index = index, Start = start, Count = count });
        data.CopyTo(buf.AsSpan(20));
        return p.Ioctl(fd, VFIO_DEVICE_SET_IRQS, buf);
    }

    /// <summary>SET_IRQS DATA_EVENTFD|ACTION_TRIGGER for vectors start.. with the given fds (-1 de-assigns).</summary>
    public static long SetIrqEventfds(this UserProcess p, int fd, uint index, uint start, params int[] eventfds) =>
        p.SetIrqs(fd, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, index, start, (uint)eventfds.Length, MemoryMarshal.AsBytes(eventfds.AsSpan()));

    /// <summary>Reads the 8-byte counter of an eventfd; 0 when it would block.</summary>
    public static ulong ReadEventFd(this UserProcess p, int efd)
    {
        var buf = new byte[8];
        var r = p.Pread(efd, buf, 0);
        return r == 8 ? BinaryPrimitives.ReadUInt64LittleEndian(buf) : 0;
    }

    public static long ReadRegion(this UserProcess p, int fd, int index, ulong offset, Span<byte> buffer) =>
        p.Pread(fd, buffer, PciSut.RegionOffset(index, offset));

    public static long WriteRegion(this UserProcess p, int fd, int index, ulong offset, ReadOnlySpan<byte> buffer) =>
        p.Pwrite(fd, buffer, PciSut.RegionOffset(index, offset));

    public static ushort ConfigRead16(this UserProcess p, int fd, int offset)
    {
        var b = new byte[2];
        Assert.Equal(2, p.ReadRegion(fd, VFIO_PCI_CONFIG_REGION_INDEX, (ulong)offset, b));
        return BinaryPrimitives.ReadUInt16LittleEndian(b);
    }

    public static uint ConfigRead32(this UserProcess p, int fd, int offset)
    {
        var b = new byte[4];
        Assert.Equal(4, p.ReadRegion(fd, VFIO_PCI_CONFIG_REGION_INDEX, (ulong)offset, b));
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    public static void ConfigWrite16(this UserProcess p, int fd, int offset, ushort value)
    {
        var b = new byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, value);
        Assert.Equal(2, p.WriteRegion(fd, VFIO_PCI_CONFIG_REGION_INDEX, (ulong)offset, b));
    }

    public static void ConfigWrite32(this UserProcess p, int fd, int offset, uint value)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        Assert.Equal(4, p.WriteRegion(fd, VFIO_PCI_CONFIG_REGION_INDEX, (ulong)offset, b));
    }

    public static long MmapRegion(this UserProcess p, int fd, int index, ulong offset, ulong length, Prot prot = Prot.Read | Prot.Write, MapFlags flags = MapFlags.Shared) =>
        p.Mmap(0, length, prot, flags, fd, (ulong)PciSut.RegionOffset(index, offset));

    public static uint Read32(this UserProcess p, ulong va)
    {
        var b = new byte[4];
        Assert.Equal(4, p.ReadMemory(va, b));
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    public static void Write32(this UserProcess p, ulong va, uint value)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        Assert.Equal(4, p.WriteMemory(va, b));
    }
}
