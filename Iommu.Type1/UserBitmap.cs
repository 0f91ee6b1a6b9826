using System.Buffers.Binary;
using KernelModel.Kernel;
using KernelModel.Mm;

namespace KernelModel.Iommu.Type1;

/// <summary>
/// struct vfio_bitmap { u64 pgsize; u64 size; u64 __user *data; } as user space passes it for dirty
/// bitmaps: <see cref="Data"/> is an address in the caller's memory.
/// </summary>
internal readonly record struct UserBitmap(ulong PageSize, ulong SizeBytes, ulong Data)
{
    public const int Size = 24;

    public static UserBitmap Read(ReadOnlySpan<byte> s) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(s),
        BinaryPrimitives.ReadUInt64LittleEndian(s[8..]),
        BinaryPrimitives.ReadUInt64LittleEndian(s[16..]));

    /// <summary>verify_bitmap_size(): room for one bit per page of <paramref name="rangeSize"/>, within DIRTY_BITMAP_SIZE_MAX.</summary>
    public KResult VerifySize(ulong rangeSize)
    {
        if (PageSize == 0 || (PageSize & (PageSize - 1)) != 0)
        {
            return Errno.EINVAL;
        }

        var npages = rangeSize >> System.Numerics.BitOperations.TrailingZeroCount(PageSize);
        var needed = ((npages + 63) / 64) * 8;
        if (npages == 0 || SizeBytes == 0 || SizeBytes > Type1Abi.DirtyBitmapSizeMax || SizeBytes < needed)
        {
            return Errno.EINVAL;
        }

        return KResult.Ok;
    }

    /// <summary>
    /// update_user_bitmap(): ORs the dirty bits of <paramref name="dma"/> into the user's bitmap at
    /// the bit offset of dma.Iova from <paramref name="baseIova"/>. The bytes are reached the way
    /// copy_to_user would fault them in: pinned for the write, then unpinned.
    /// </summary>
    public KResult CopyOut(VfioDma dma, ulong baseIova, ulong pgsize)
    {
        if (dma.DirtyBitmap is not { } bits || dma.Size == 0)
        {
            return KResult.Ok;
        }

        if (UserProcess.Current?.Mm is not { } mm)
        {
            return Errno.EFAULT;
        }

        var firstBit = (dma.Iova - baseIova) / pgsize;
        var nbits = dma.Size / pgsize;
        var firstByte = firstBit / 8;
        var lastByte = (firstBit + nbits - 1) / 8;
        if (lastByte >= SizeBytes)
        {
            return Errno.EINVAL;
        }

        var bytes = new byte[lastByte - firstByte + 1];
        var access = Access(mm, Data + firstByte, bytes, write: false);
        if (!access.IsOk)
        {
            return access;
        }

        for (ulong i = 0; i < nbits; i++)
        {
            if ((bits[i / 64] & (1UL << (int)(i % 64))) != 0)
            {
                var bit = firstBit + i;
                bytes[(bit / 8) - firstByte] |= (byte)(1 << (int)(bit % 8));
            }
        }

        return Access(mm, Data + firstByte, bytes, write: true);
    }

    private static KResult Access(MmStruct mm, ulong vaddr, byte[] buffer, bool write)
    {
        var pageSize = mm.Geometry.PageSize;
        var done = 0;
        Span<PfnRun> run = stackalloc PfnRun[1];
        while (done < buffer.Length)
        {
            var at = vaddr + (ulong)done;
            var page = at & ~(pageSize - 1);
            var pinned = Gup.PinUserPages(mm, page, 1, write ? FollFlags.Write : FollFlags.None, run, out _);
            if (!pinned.IsOk)
            {
                return Errno.EFAULT;
            }

            var offset = at - page;
            var n = (int)Math.Min((ulong)(buffer.Length - done), pageSize - offset);
            var phys = new PhysAddr((run[0].Start.Value << mm.Geometry.PageShift) + offset);
            if (write)
            {
                mm.Phys.Write(phys, buffer.AsSpan(done, n));
            }
            else
            {
                mm.Phys.Read(phys, buffer.AsSpan(done, n));
            }

            Gup.UnpinPages(mm.Phys, new PfnRun(run[0].Start, 1), dirty: write);
            done += n;
        }

        return KResult.Ok;
    }
}
