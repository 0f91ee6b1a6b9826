using KernelModel.Kernel;
using KernelModel.Mm;
using KernelModel.Uapi;

namespace KernelModel.Iommu.Type1;

/// <summary>
/// The dirty bitmaps of dirty page tracking: the per-mapping bitmap (one bit per smallest IOMMU
/// page) and the user's struct vfio_bitmap it is copied into.
/// </summary>
internal static class DirtyBitmap
{
    /// <summary>DIRTY_BITMAP_SIZE_MAX: one bit per page for INT_MAX pages, in whole u64s, in bytes.</summary>
    public const ulong SizeMax = ((int.MaxValue + 63UL) / 64) * 8;

    /// <summary>A zeroed bitmap for <paramref name="size"/> bytes of mapping (vfio_dma_bitmap_alloc()).</summary>
    public static ulong[] Allocate(ulong size, ulong pgsize) => new ulong[((size / pgsize) + 63) / 64];

    /// <summary>bitmap_set(): marks <paramref name="count"/> pages from page <paramref name="first"/>.</summary>
    public static void Set(ulong[] bits, ulong first, ulong count)
    {
        for (var i = first; i < first + count; i++)
        {
            bits[i / 64] |= 1UL << (int)(i % 64);
        }
    }

    /// <summary>
    /// verify_bitmap_size() after __ffs(bitmap.pgsize): room for one bit per page of
    /// <paramref name="rangeSize"/>, within DIRTY_BITMAP_SIZE_MAX. A zero page size is EINVAL here
    /// (the kernel's __ffs(0) is undefined).
    /// </summary>
    public static KResult VerifySize(in VfioBitmap bitmap, ulong rangeSize)
    {
        if (bitmap.Pgsize == 0)
        {
            return Errno.EINVAL;
        }

        var npages = rangeSize >> System.Numerics.BitOperations.TrailingZeroCount(bitmap.Pgsize);
        var needed = ((npages + 63) / 64) * 8;
        if (npages == 0 || bitmap.Size == 0 || bitmap.Size > SizeMax || bitmap.Size < needed)
        {
            return Errno.EINVAL;
        }

        return KResult.Ok;
    }

    /// <summary>access_ok(): the bitmap's bytes lie below the caller's TASK_SIZE.</summary>
    public static bool AccessOk(in VfioBitmap bitmap, MmStruct? mm) =>
        mm is null || (bitmap.Size <= mm.TaskSize && bitmap.Data <= mm.TaskSize - bitmap.Size);

    /// <summary>
    /// update_user_bitmap(): ORs the dirty bits of <paramref name="dma"/> into the caller's bitmap at
    /// the bit offset of dma.Iova from <paramref name="baseIova"/>. When <paramref name="allDirty"/>
    /// (some group in the container can DMA without reporting what it dirtied) every page of the
    /// mapping is reported.
    /// </summary>
    public static KResult CopyOut(in VfioBitmap bitmap, VfioDma dma, ulong baseIova, ulong pgsize, bool allDirty)
    {
        if (dma.DirtyBitmap is not { } bits || dma.Size == 0)
        {
            return KResult.Ok;
        }

        if (allDirty)
        {
            Set(bits, 0, dma.Size / pgsize);
        }

        if (UserProcess.Current?.Mm is not { } mm)
        {
            return Errno.EFAULT;
        }

        var firstBit = (dma.Iova - baseIova) / pgsize;
        var nbits = dma.Size / pgsize;
        var firstByte = firstBit / 8;
        var lastByte = (firstBit + nbits - 1) / 8;
        if (lastByte >= bitmap.Size)
        {
            return Errno.EINVAL;
        }

        var bytes = new byte[lastByte - firstByte + 1];
        var read = UserMemory.Copy(mm, bitmap.Data + firstByte, bytes, toUser: false);
        if (!read.IsOk)
        {
            return read;
        }

        for (ulong i = 0; i < nbits; i++)
        {
            if ((bits[i / 64] & (1UL << (int)(i % 64))) != 0)
            {
                var bit = firstBit + i;
                bytes[(bit / 8) - firstByte] |= (byte)(1 << (int)(bit % 8));
            }
        }

        return UserMemory.Copy(mm, bitmap.Data + firstByte, bytes, toUser: true);
    }
}
