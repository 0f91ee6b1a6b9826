using System.Numerics;
using KernelModel.Kernel;
using KernelModel.Uapi;

namespace KernelModel.Iommu.Type1;

/// <summary>
/// VFIO_IOMMU_DIRTY_PAGES: dirty page tracking with a bitmap per mapping. A group whose devices
/// DMA through the IOMMU cannot say what they wrote, so while any such group is outside the
/// pinned-page dirty scope every mapped page reads dirty; once every group declared its scope by
/// pinning through <see cref="PinPages"/>, only externally pinned pages and dma_rw writes do.
/// </summary>
internal sealed partial class Type1Container
{
    private static readonly int DirtyMinsz = UapiTable.LayoutOf<VfioIommuType1DirtyBitmap>().OffsetOfEnd("flags");

    // update_user_bitmap(): every page of a mapped dma is dirty while some group can dirty memory unseen.
    private bool AllDirty(VfioDma dma) => _numNonPinnedGroups != 0 && dma.IommuMapped;

    // Like vfio_iommu_type1_dirty_pages(): v2 only; START/STOP/GET_BITMAP, exactly one at a time.
    private long DirtyPagesIoctl(IoctlArg arg)
    {
        if (!V2)
        {
            return -(long)Errno.EACCES;
        }

        var buf = arg.Buffer;
        if (!arg.IsBuffer || !UapiStruct.TryCopyFromUser(buf, DirtyMinsz, out VfioIommuType1DirtyBitmap dirty))
        {
            return -(long)Errno.EFAULT;
        }

        const uint start = VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_START;
        const uint stop = VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP;
        const uint get = VfioUapi.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
        var flags = dirty.Flags;
        if (dirty.Argsz < DirtyMinsz || (flags & ~(start | stop | get)) != 0)
        {
            return -(long)Errno.EINVAL;
        }

        // Exactly one flag (__ffs == __fls); no flag at all is EINVAL too.
        if (flags == 0 || (flags & (flags - 1)) != 0)
        {
            return -(long)Errno.EINVAL;
        }

        switch (flags)
        {
            case start:
                lock (_lock)
                {
                    if (!_dirtyTracking)
                    {
                        // vfio_dma_bitmap_alloc_all(): what emulated devices hold pinned is dirty from the start.
                        var pgsize = MinPageSize();
                        foreach (var dma in _dmas)
                        {
                            dma.DirtyBitmap = DirtyBitmap.Allocate(dma.Size, pgsize);
                            PopulateBitmap(dma, pgsize);
                        }

                        _dirtyTracking = true;
                    }
                }

                return 0;
            case stop:
                lock (_lock)
                {
                    if (_dirtyTracking)
                    {
                        _dirtyTracking = false;
                        foreach (var dma in _dmas)
                        {
                            dma.DirtyBitmap = null;
                        }
                    }
                }

                return 0;
            default:
                return GetDirtyBitmap(buf, dirty.Argsz);
        }
    }

    // The GET_BITMAP part: struct vfio_iommu_type1_dirty_bitmap_get in data[].
    private long GetDirtyBitmap(Span<byte> buf, uint argsz)
    {
        var rangeSize = UapiStruct.SizeOf<VfioIommuType1DirtyBitmapGet>();
        var dataSize = argsz - (uint)DirtyMinsz;
        if (dataSize == 0 || dataSize < rangeSize)
        {
            return -(long)Errno.EINVAL;
        }

        if (!UapiStruct.TryRead(UapiStruct.Trailing<VfioIommuType1DirtyBitmap>((ReadOnlySpan<byte>)buf), out VfioIommuType1DirtyBitmapGet range))
        {
            return -(long)Errno.EFAULT;
        }

        if (range.Size == 0)
        {
            return -(long)Errno.EINVAL;
        }

        if (range.Iova > ulong.MaxValue - (range.Size - 1))
        {
            return -(long)Errno.EOVERFLOW;
        }

        if (!DirtyBitmap.AccessOk(range.Bitmap, UserProcess.Current?.Mm))
        {
            return -(long)Errno.EINVAL;
        }

        var verified = DirtyBitmap.VerifySize(range.Bitmap, range.Size);
        if (!verified.IsOk)
        {
            return -(long)verified.Error;
        }

        lock (_lock)
        {
            var pgsize = MinPageSize();

            // Only the smallest supported page size.
            if (range.Bitmap.Pgsize != pgsize || (range.Iova & (pgsize - 1)) != 0 || (range.Size & (pgsize - 1)) != 0)
            {
                return -(long)Errno.EINVAL;
            }

            if (!_dirtyTracking)
            {
                return -(long)Errno.EINVAL;
            }

            return IovaDirtyBitmap(range.Bitmap, range.Iova, range.Size, pgsize).ToSyscall();
        }
    }

    // vfio_iova_dirty_bitmap(): the range must cover whole mappings; each one's bits are copied
    // out, then its bitmap restarts from what emulated devices still hold pinned.
    private KResult IovaDirtyBitmap(in VfioBitmap bitmap, ulong iova, ulong size, ulong pgsize)
    {
        var last = iova + (size - 1);
        if (SplitsAMapping(iova, last))
        {
            return Errno.EINVAL;
        }

        var index = FirstOverlapIndex(iova, last);
        while (index >= 0 && index < _dmas.Count && _dmas[index].Iova <= last)
        {
            var dma = _dmas[index];
            var copied = DirtyBitmap.CopyOut(bitmap, dma, iova, pgsize, AllDirty(dma));
            if (!copied.IsOk)
            {
                return copied;
            }

            Array.Clear(dma.DirtyBitmap!);
            PopulateBitmap(dma, pgsize);
            index++;
        }

        return KResult.Ok;
    }

    // vfio_dma_populate_bitmap(): the pages emulated devices hold pinned.
    private static void PopulateBitmap(VfioDma dma, ulong pgsize)
    {
        if (dma.PfnList is not { } list || dma.DirtyBitmap is not { } bits)
        {
            return;
        }

        var shift = BitOperations.TrailingZeroCount(pgsize);
        foreach (var vpfn in list.Values)
        {
            DirtyBitmap.Set(bits, (vpfn.Iova - dma.Iova) >> shift, 1);
        }
    }

    // vfio_iommu_populate_bitmap_full(): every page of every mapping.
    private void PopulateBitmapsFull()
    {
        var shift = BitOperations.TrailingZeroCount(MinPageSize());
        foreach (var dma in _dmas)
        {
            if (dma.DirtyBitmap is { } bits)
            {
                DirtyBitmap.Set(bits, 0, dma.Size >> shift);
            }
        }
    }
}
