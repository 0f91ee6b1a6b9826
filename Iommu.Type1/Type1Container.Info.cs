using System.Numerics;
using KernelModel.Kernel;
using KernelModel.Uapi;
using KernelModel.Vfio;

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
        VfioInfoCap caps;
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
    // vfio_iommu_iova_build_caps(), in that order, through the core's chain builder: as upstream
    // since 6.6 every capability is padded to 8 bytes, so IOVA_RANGE follows the 12-byte DMA_AVAIL
    // at offset 72, 8-byte aligned.
    private VfioInfoCap BuildInfoCaps(ulong pgsizes)
    {
        var caps = new VfioInfoCap();
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
            var cap = caps.Add((ushort)VfioUapi.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 1, header + (_iovaList.Count * UapiStruct.SizeOf<VfioIovaRange>()));
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
