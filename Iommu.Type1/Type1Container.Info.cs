using System.Numerics;
using KernelModel.Kernel;
using KernelModel.Uapi;

namespace KernelModel.Iommu.Type1;

/// <summary>VFIO_IOMMU_GET_INFO.</summary>
internal sealed partial class Type1Container
{
    private static readonly int InfoMinsz = UapiTable.LayoutOf<VfioIommuType1Info>().OffsetOfEnd("iova_pgsizes");

    // Like vfio_iommu_type1_get_info(): flags, page sizes, and a capability chain (MIGRATION,
    // DMA_AVAIL, IOVA_RANGE, in the kernel's order) returned only when argsz has room for all of
    // it; otherwise argsz tells the caller how much to allocate and cap_offset stays 0. Only
    // min(argsz, sizeof(info)) bytes of the info itself are written back.
    private long GetInfo(IoctlArg arg)
    {
        if (!arg.IsBuffer || !UapiStruct.TryCopyFromUser(arg.Buffer, InfoMinsz, out VfioIommuType1Info info))
        {
            return -(long)Errno.EFAULT;
        }

        if (info.Argsz < InfoMinsz)
        {
            return -(long)Errno.EINVAL;
        }

        var infoSize = UapiStruct.SizeOf<VfioIommuType1Info>();
        var minsz = (int)Math.Min(info.Argsz, (uint)infoSize);
        InfoCapChain caps;
        lock (_lock)
        {
            info.Flags = VfioUapi.VFIO_IOMMU_INFO_PGSIZES;
            info.IovaPgsizes = PageSizeBitmap();
            caps = BuildInfoCaps(info.IovaPgsizes);
        }

        if (caps.Size != 0)
        {
            info.Flags |= VfioUapi.VFIO_IOMMU_INFO_CAPS;
            var needed = (uint)(infoSize + caps.Size);
            if (info.Argsz < needed)
            {
                info.Argsz = needed;
            }
            else
            {
                caps.Shift(infoSize);
                if (arg.Buffer.Length < needed)
                {
                    return -(long)Errno.EFAULT;
                }

                caps.Buffer.CopyTo(arg.Buffer[infoSize..]);
                info.CapOffset = (uint)infoSize;
            }
        }

        return UapiStruct.TryCopyToUser(arg.Buffer, info, minsz) ? 0 : -(long)Errno.EFAULT;
    }

    // vfio_iommu_migration_build_caps(), vfio_iommu_dma_avail_build_caps() and
    // vfio_iommu_iova_build_caps(), in that order. Each capability is exactly its struct's size:
    // vfio_info_cap_add() does not pad, so the 12-byte DMA_AVAIL leaves IOVA_RANGE at a 4-byte
    // aligned offset (68 from the start of the info), as on Linux.
    private InfoCapChain BuildInfoCaps(ulong pgsizes)
    {
        var caps = new InfoCapChain();
        caps.Add(new VfioIommuType1InfoCapMigration
        {
            Header = new VfioInfoCapHeader { Id = VfioUapi.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, Version = 1 },
            Flags = 0,

            // Dirty logging at the smallest page size only.
            PgsizeBitmap = 1UL << BitOperations.TrailingZeroCount(pgsizes),
            MaxDirtyBitmapSize = DirtyBitmap.SizeMax,
        });

        caps.Add(new VfioIommuType1InfoDmaAvail
        {
            Header = new VfioInfoCapHeader { Id = VfioUapi.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, Version = 1 },
            Avail = (uint)Math.Max(0, _dmaAvail),
        });

        // Nothing when the list is empty (a container with only emulated groups).
        if (_iovaList.Count != 0)
        {
            var header = UapiStruct.SizeOf<VfioIommuType1InfoCapIovaRange>();
            var cap = caps.Add(VfioUapi.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 1, header + (_iovaList.Count * UapiStruct.SizeOf<VfioIovaRange>()));
            UapiStruct.Write(cap, new VfioIommuType1InfoCapIovaRange
            {
                Header = new VfioInfoCapHeader { Id = VfioUapi.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, Version = 1 },
                NrIovas = (uint)_iovaList.Count,
            });
            var ranges = UapiStruct.Trailing<VfioIommuType1InfoCapIovaRange>(cap);
            for (var i = 0; i < _iovaList.Count; i++)
            {
                UapiStruct.TryWriteElement(ranges, i, new VfioIovaRange { Start = _iovaList[i].Start, End = _iovaList[i].Last });
            }
        }

        return caps;
    }
}

/// <summary>
/// struct vfio_info_cap as vfio_info_cap_add() and vfio_info_cap_shift() build it: capabilities
/// appended back to back with no padding, each header's <c>next</c> the offset of the following one
/// (relative to the chain until <see cref="Shift"/>), 0 at the end.
/// </summary>
/// <remarks>
/// Core's shared chain helper (Core/Vfio/VfioInfoCap.cs) pads every capability to 8 bytes, which
/// vfio_info_cap_add() does not: with the 12-byte DMA_AVAIL capability that would move IOVA_RANGE
/// from offset 68 to 72. So the backend keeps this small, byte-exact builder until Core's matches.
/// </remarks>
internal sealed class InfoCapChain
{
    private byte[] _buffer = [];
    private int _last = -1;

    /// <summary>The chain's size in bytes.</summary>
    public int Size { get; private set; }

    /// <summary>The chain.</summary>
    public ReadOnlySpan<byte> Buffer => _buffer.AsSpan(0, Size);

    /// <summary>vfio_info_cap_add(): appends <paramref name="size"/> zeroed bytes with the header filled in and links them.</summary>
    public Span<byte> Add(int id, int version, int size)
    {
        var at = Size;
        Array.Resize(ref _buffer, at + size);
        var cap = _buffer.AsSpan(at, size);
        cap.Clear();
        UapiStruct.Write(cap, new VfioInfoCapHeader { Id = (ushort)id, Version = (ushort)version });
        if (_last >= 0)
        {
            SetNext(_last, (uint)at);
        }

        _last = at;
        Size = at + size;
        return cap;
    }

    /// <summary>vfio_info_add_capability(): appends a whole capability struct; its header gives id and version.</summary>
    public void Add<T>(in T capability)
        where T : unmanaged
    {
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in capability));
        UapiStruct.TryRead(bytes, out VfioInfoCapHeader header);
        var headerSize = UapiStruct.SizeOf<VfioInfoCapHeader>();
        bytes[headerSize..].CopyTo(Add(header.Id, header.Version, bytes.Length)[headerSize..]);
    }

    /// <summary>vfio_info_cap_shift(): makes every <c>next</c> relative to a struct <paramref name="offset"/> bytes before the chain.</summary>
    public void Shift(int offset)
    {
        for (var at = 0; at < Size;)
        {
            var next = Next(_buffer.AsSpan(at));
            if (next == 0)
            {
                break;
            }

            SetNext(at, next + (uint)offset);
            at = (int)next;
        }
    }

    private static uint Next(ReadOnlySpan<byte> cap) => UapiStruct.TryRead(cap, out VfioInfoCapHeader h) ? h.Next : 0;

    private void SetNext(int at, uint next)
    {
        UapiStruct.TryRead(_buffer.AsSpan(at), out VfioInfoCapHeader h);
        h.Next = next;
        UapiStruct.Write(_buffer.AsSpan(at), h);
    }
}
