using KernelModel.Kernel;
using KernelModel.Mm;

namespace KernelModel.Iommu.Type1;

/// <summary>
/// copy_to_user()/copy_from_user() against a given mm, for the backend's own accesses to user memory
/// (dirty bitmaps, dma_rw). Each page is reached the way the access would fault it in: pinned for
/// the copy, then unpinned, so nothing stays pinned and a write leaves the folio dirty.
/// </summary>
internal static class UserMemory
{
    /// <summary>Copies <paramref name="buffer"/> to (or fills it from) [vaddr, vaddr + length) of <paramref name="mm"/>; EFAULT when a page cannot be reached.</summary>
    public static KResult Copy(MmStruct mm, ulong vaddr, Span<byte> buffer, bool toUser)
    {
        var pageSize = mm.Geometry.PageSize;
        var done = 0;
        Span<PfnRun> run = stackalloc PfnRun[1];
        while (done < buffer.Length)
        {
            var at = vaddr + (ulong)done;
            var page = at & ~(pageSize - 1);
            var pinned = Gup.PinUserPages(mm, page, 1, toUser ? FollFlags.Write : FollFlags.None, run, out _);
            if (!pinned.IsOk)
            {
                return Errno.EFAULT;
            }

            var offset = at - page;
            var n = (int)Math.Min((ulong)(buffer.Length - done), pageSize - offset);
            var phys = new PhysAddr((run[0].Start.Value << mm.Geometry.PageShift) + offset);
            if (toUser)
            {
                mm.Phys.Write(phys, buffer.Slice(done, n));
            }
            else
            {
                mm.Phys.Read(phys, buffer.Slice(done, n));
            }

            Gup.UnpinPages(mm.Phys, new PfnRun(run[0].Start, 1), dirty: toUser);
            done += n;
        }

        return KResult.Ok;
    }
}
