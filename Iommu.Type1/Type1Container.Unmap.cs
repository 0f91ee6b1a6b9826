using KernelModel.Kernel;
using KernelModel.Uapi;

namespace KernelModel.Iommu.Type1;

/// <summary>VFIO_IOMMU_UNMAP_DMA, and telling emulated devices about it.</summary>
internal sealed partial class Type1Container
{
    private static readonly int UnmapMinsz = UapiTable.LayoutOf<VfioIommuType1DmaUnmap>().OffsetOfEnd("size");

    // Like vfio_iommu_type1_unmap_dma(): copy in offsetofend(size), validate argsz and flags, read
    // the struct vfio_bitmap from data[] for GET_DIRTY_BITMAP, unmap, and write the unmapped size
    // back only on success.
    private long UnmapDmaIoctl(IoctlArg arg)
    {
        var buf = arg.Buffer;
        if (!arg.IsBuffer || !UapiStruct.TryCopyFromUser(buf, UnmapMinsz, out VfioIommuType1DmaUnmap unmap))
        {
            return -(long)Errno.EFAULT;
        }

        const uint mask = VfioUapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VfioUapi.VFIO_DMA_UNMAP_FLAG_ALL | VfioUapi.VFIO_DMA_UNMAP_FLAG_VADDR;
        if (unmap.Argsz < UnmapMinsz || (unmap.Flags & ~mask) != 0)
        {
            return -(long)Errno.EINVAL;
        }

        if ((unmap.Flags & VfioUapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) != 0
            && (unmap.Flags & (VfioUapi.VFIO_DMA_UNMAP_FLAG_ALL | VfioUapi.VFIO_DMA_UNMAP_FLAG_VADDR)) != 0)
        {
            return -(long)Errno.EINVAL;
        }

        VfioBitmap? bitmap = null;
        if ((unmap.Flags & VfioUapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) != 0)
        {
            var bitmapSize = UapiStruct.SizeOf<VfioBitmap>();
            if (unmap.Argsz < UnmapMinsz + bitmapSize)
            {
                return -(long)Errno.EINVAL;
            }

            if (!UapiStruct.TryCopyFromUser(buf[UnmapMinsz..], bitmapSize, out VfioBitmap bm))
            {
                return -(long)Errno.EFAULT;
            }

            if (!DirtyBitmap.AccessOk(bm, UserProcess.Current?.Mm))
            {
                return -(long)Errno.EINVAL;
            }

            var verified = DirtyBitmap.VerifySize(bm, unmap.Size);
            if (!verified.IsOk)
            {
                return -(long)verified.Error;
            }

            bitmap = bm;
        }

        var result = DoUnmap(unmap.Flags, unmap.Iova, unmap.Size, bitmap, out var unmapped);
        if (!result.IsOk)
        {
            return -(long)result.Error;
        }

        unmap.Size = unmapped;
        return UapiStruct.TryCopyToUser(buf, unmap, UnmapMinsz) ? 0 : -(long)Errno.EFAULT;
    }

    /// <summary>
    /// Like vfio_dma_do_unmap() in current upstream. v2 refuses a range whose start or end falls
    /// inside a mapping; v1 removes whole mappings that start inside the range and stops at one that
    /// starts before it. UNMAP_ALL needs iova and size 0. FLAG_VADDR only invalidates the vaddrs.
    /// A mapping with external pins is not removed until every emulated device has unpinned: they
    /// are told (DmaUnmap, with the lock dropped) and the walk starts over, BUG_ON after ten
    /// retries on the same mapping.
    /// </summary>
    private KResult DoUnmap(uint flags, ulong iova, ulong size, VfioBitmap? bitmap, out ulong unmapped)
    {
        unmapped = 0;
        var unmapAll = (flags & VfioUapi.VFIO_DMA_UNMAP_FLAG_ALL) != 0;
        var invalidateVaddr = (flags & VfioUapi.VFIO_DMA_UNMAP_FLAG_VADDR) != 0;
        var retry = new ExternalPinRetry();
        lock (_lock)
        {
            var pgsize = MinPageSize();
            if ((iova & (pgsize - 1)) != 0)
            {
                return Errno.EINVAL;
            }

            ulong last;
            if (unmapAll)
            {
                if (iova != 0 || size != 0)
                {
                    return Errno.EINVAL;
                }

                last = ulong.MaxValue;
            }
            else
            {
                if (size == 0 || (size & (pgsize - 1)) != 0)
                {
                    return Errno.EINVAL;
                }

                if (iova > ulong.MaxValue - (size - 1))
                {
                    return Errno.EOVERFLOW;
                }

                last = iova + (size - 1);
            }

            // Dirty bitmaps only at the smallest page size, and only while tracking.
            if (bitmap is { } bm && (!_dirtyTracking || bm.Pgsize != pgsize))
            {
                return Errno.EINVAL;
            }

        again:
            if (V2 && !unmapAll && SplitsAMapping(iova, last))
            {
                return Errno.EINVAL;
            }

            var index = FirstOverlapIndex(iova, last);
            var firstIndex = index;
            while (index >= 0 && index < _dmas.Count)
            {
                var dma = _dmas[index];
                if (dma.Iova > last)
                {
                    break;
                }

                if (!V2 && iova > dma.Iova)
                {
                    break;
                }

                if (invalidateVaddr)
                {
                    if (dma.VaddrInvalid)
                    {
                        // Undo this call's invalidations: all or nothing.
                        for (var i = firstIndex; i < index; i++)
                        {
                            _dmas[i].VaddrInvalid = false;
                            _vaddrInvalidCount--;
                        }

                        unmapped = 0;
                        return Errno.EINVAL;
                    }

                    dma.VaddrInvalid = true;
                    _vaddrInvalidCount++;
                    unmapped += dma.Size;
                    index++;
                    continue;
                }

                if (dma.HasExternalPins)
                {
                    retry.Count(dma, "vfio_dma_do_unmap");
                    NotifyDmaUnmap(dma);
                    goto again;
                }

                if (bitmap is { } b)
                {
                    var copied = DirtyBitmap.CopyOut(b, dma, iova, pgsize, AllDirty(dma));
                    if (!copied.IsOk)
                    {
                        return copied;
                    }
                }

                unmapped += dma.Size;
                RemoveDma(dma);
            }

            return KResult.Ok;
        }
    }

    /// <summary>
    /// vfio_notify_dma_unmap(): tells every registered emulated device that the whole of
    /// <paramref name="dma"/> is about to go, so it unpins what it pinned there. Called and returns
    /// with <c>_lock</c> held, but drops it around the calls (holding the device-list lock
    /// instead), because the devices unpin through this container.
    /// </summary>
    private void NotifyDmaUnmap(VfioDma dma)
    {
        if (_devices.Count == 0)
        {
            return;
        }

        var iova = new Iova(dma.Iova);
        var size = dma.Size;
        _deviceListLock.Enter();
        _lock.Exit();
        try
        {
            foreach (var device in _devices)
            {
                device.NotifyDmaUnmap(iova, size);
            }
        }
        finally
        {
            _deviceListLock.Exit();
            _lock.Enter();
        }
    }

    // True when [iova, last] starts or ends inside a mapping: type1v2 (and the dirty bitmap
    // query) refuse a range that would split one.
    private bool SplitsAMapping(ulong iova, ulong last) =>
        (FindFirstOverlap(iova, iova) is { } first && first.Iova != iova)
        || (FindFirstOverlap(last, last) is { } tail && tail.Last != last);
}
