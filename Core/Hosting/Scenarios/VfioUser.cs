using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using KernelModel.Uapi;

namespace KernelModel.Scenarios;

/// <summary>A device region as VFIO_DEVICE_GET_REGION_INFO describes it, with its capability chain.</summary>
public sealed record RegionInfo(uint Index, uint Flags, ulong Size, ulong Offset, IReadOnlyList<(ushort Id, ushort Version, byte[] Body)> Caps)
{
    /// <summary>True when the region may be mmapped.</summary>
    public bool Mmappable => (Flags & VfioUapi.VFIO_REGION_INFO_FLAG_MMAP) != 0;

    /// <summary>The sparse-mmap areas (offset, size), if the region carries that capability.</summary>
    public IReadOnlyList<(ulong Offset, ulong Size)>? SparseAreas
    {
        get
        {
            var cap = Caps.FirstOrDefault(c => c.Id == VfioUapi.VFIO_REGION_INFO_CAP_SPARSE_MMAP);
            if (cap.Body is null)
            {
                return null;
            }

            // After the header: __u32 nr_areas, __u32 reserved, then {offset, size} pairs.
            var n = BinaryPrimitives.ReadUInt32LittleEndian(cap.Body);
            var areas = new List<(ulong, ulong)>();
            for (var i = 0; i < n; i++)
            {
                var at = 8 + (i * 16);
                areas.Add((BinaryPrimitives.ReadUInt64LittleEndian(cap.Body.AsSpan(at)), BinaryPrimitives.ReadUInt64LittleEndian(cap.Body.AsSpan(at + 8))));
            }

            return areas;
        }
    }
}

/// <summary>
/// What a VFIO user program does, spelled as the uAPI spells it: the small user-space library the
/// scenarios are written with. Every call goes through the process's system calls and is traced.
/// </summary>
public sealed class VfioUser(UserProcess process, ScenarioTrace trace)
{
    /// <summary>The process.</summary>
    public UserProcess Process { get; } = process;

    /// <summary>The trace.</summary>
    public ScenarioTrace Trace { get; } = trace;

    /// <summary>open(path).</summary>
    public int Open(string path) => (int)Trace.Syscall($"open(\"{path}\")", Process.Open(path));

    /// <summary>close(fd).</summary>
    public int Close(int fd) => (int)Trace.Syscall($"close({fd})", Process.Close(fd));

    /// <summary>ioctl(group, VFIO_GROUP_SET_CONTAINER, &amp;container).</summary>
    public long SetContainer(int group, int container)
    {
        Span<byte> arg = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(arg, container);
        return Trace.Syscall($"ioctl({group}, VFIO_GROUP_SET_CONTAINER, &{container})", Process.Ioctl(group, VfioUapi.VFIO_GROUP_SET_CONTAINER, arg));
    }

    /// <summary>ioctl(container, VFIO_SET_IOMMU, type).</summary>
    public long SetIommu(int container, ulong type) =>
        Trace.Syscall($"ioctl({container}, VFIO_SET_IOMMU, {type})", Process.Ioctl(container, VfioUapi.VFIO_SET_IOMMU, type));

    /// <summary>ioctl(group, VFIO_GROUP_GET_DEVICE_FD, name).</summary>
    public int GetDeviceFd(int group, string name)
    {
        var bytes = Encoding.UTF8.GetBytes(name + "\0");
        return (int)Trace.Syscall($"ioctl({group}, VFIO_GROUP_GET_DEVICE_FD, \"{name}\")", Process.Ioctl(group, VfioUapi.VFIO_GROUP_GET_DEVICE_FD, bytes));
    }

    /// <summary>VFIO_DEVICE_GET_REGION_INFO with the argsz-grow protocol: asks once, grows the buffer when told, asks again.</summary>
    public RegionInfo? GetRegionInfo(int device, uint index)
    {
        var size = Marshal.SizeOf<VfioRegionInfo>();
        for (var attempt = 0; attempt < 2; attempt++)
        {
            var buffer = new byte[size];
            UapiStruct.Write(buffer, new VfioRegionInfo { Argsz = (uint)size, Index = index });
            var r = Trace.Syscall($"ioctl({device}, VFIO_DEVICE_GET_REGION_INFO, {{index {index}, argsz {size}}})", Process.Ioctl(device, VfioUapi.VFIO_DEVICE_GET_REGION_INFO, buffer));
            if (r < 0 || !UapiStruct.TryRead<VfioRegionInfo>(buffer, out var info))
            {
                return null;
            }

            if (info.Argsz > size)
            {
                size = (int)info.Argsz;
                continue;
            }

            var caps = new List<(ushort, ushort, byte[])>();
            var next = (info.Flags & VfioUapi.VFIO_REGION_INFO_FLAG_CAPS) != 0 ? info.CapOffset : 0;
            while (next != 0 && next + 8 <= buffer.Length)
            {
                var id = BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan((int)next));
                var version = BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan((int)next + 2));
                var following = BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan((int)next + 4));
                var end = following != 0 ? (int)following : buffer.Length;
                caps.Add((id, version, buffer.AsSpan((int)next + 8, Math.Max(0, end - (int)next - 8)).ToArray()));
                next = following;
            }

            return new RegionInfo(info.Index, info.Flags, info.Size, info.Offset, caps);
        }

        return null;
    }

    /// <summary>mmap(NULL, length, RW, MAP_SHARED, fd, offset).</summary>
    public long MmapShared(int fd, ulong offset, ulong length) =>
        Trace.Syscall($"mmap(NULL, 0x{length:x}, PROT_READ|PROT_WRITE, MAP_SHARED, {fd}, 0x{offset:x})",
            Process.Mmap(0, length, Prot.Read | Prot.Write, MapFlags.Shared, fd, offset));

    /// <summary>munmap(addr, length).</summary>
    public int Munmap(ulong addr, ulong length) => (int)Trace.Syscall($"munmap(0x{addr:x}, 0x{length:x})", Process.Munmap(addr, length));

    /// <summary>ioctl(container, VFIO_IOMMU_MAP_DMA, {vaddr, iova, size, READ|WRITE}).</summary>
    public long MapDma(int container, ulong vaddr, ulong iova, ulong size)
    {
        var map = new VfioIommuType1DmaMap
        {
            Argsz = (uint)Marshal.SizeOf<VfioIommuType1DmaMap>(),
            Flags = VfioUapi.VFIO_DMA_MAP_FLAG_READ | VfioUapi.VFIO_DMA_MAP_FLAG_WRITE,
            Vaddr = vaddr,
            Iova = iova,
            Size = size,
        };
        var buffer = new byte[map.Argsz];
        UapiStruct.Write(buffer, map);
        return Trace.Syscall($"ioctl({container}, VFIO_IOMMU_MAP_DMA, {{vaddr 0x{vaddr:x}, iova 0x{iova:x}, size 0x{size:x}}})",
            Process.Ioctl(container, VfioUapi.VFIO_IOMMU_MAP_DMA, buffer));
    }

    /// <summary>pread(fd, length bytes, offset).</summary>
    public byte[] Pread(int fd, int length, ulong offset, out long result)
    {
        var buffer = new byte[length];
        result = Trace.Syscall($"pread({fd}, {length}, 0x{offset:x})", Process.Pread(fd, buffer, (long)offset));
        return buffer;
    }

    /// <summary>pwrite(fd, bytes, offset).</summary>
    public long Pwrite(int fd, ReadOnlySpan<byte> data, ulong offset) =>
        Trace.Syscall($"pwrite({fd}, {data.Length}, 0x{offset:x})", Process.Pwrite(fd, data, (long)offset));
}
