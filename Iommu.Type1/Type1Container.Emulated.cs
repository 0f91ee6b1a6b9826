using System.Numerics;
using KernelModel.Kernel;
using KernelModel.Mm;
using KernelModel.Vfio;

namespace KernelModel.Iommu.Type1;

/// <summary>
/// Access for emulated devices (mdev and the like), which do not DMA through an IOMMU: they pin
/// the pages behind IOVAs of the container's mappings, and copy through them.
/// </summary>
/// <remarks>
/// The model's core routes nothing here: a driver finds the container with
/// <see cref="VfioCore.TryGetIommuFor"/>, registers itself at open and unregisters at close. So
/// the checks vfio_pin_pages()/vfio_unpin_pages()/vfio_dma_rw() make before calling the backend
/// (an empty or oversized request) are made here too.
/// </remarks>
internal sealed partial class Type1Container : IVfioIommuEmulatedAccess
{
    /// <summary>VFIO_PIN_PAGES_MAX_ENTRIES: one page of unsigned longs.</summary>
    private int PinPagesMaxEntries => (int)(Geometry.PageSize / sizeof(ulong));

    /// <inheritdoc />
    /// <remarks>
    /// Like vfio_iommu_type1_pin_pages(): page i is the one at iova + i * PAGE_SIZE, and must lie in
    /// a mapping that allows <paramref name="prot"/> (EINVAL outside any mapping, EPERM for more
    /// than it allows). A page this container already pins externally only gains a reference in
    /// its vfio_pfn; otherwise the page is pinned in the mapping's mm (GUP, FOLL_LONGTERM) and a
    /// vfio_pfn added. Only memory with struct pages can be pinned: a VM_PFNMAP page is EINVAL, as
    /// since Linux 6.0 (pfn_valid() before pfn_to_page()). locked_vm is charged only when the
    /// container has no IOMMU domain; otherwise the IOMMU path pinned and charged the page already.
    /// Any failure unpins what this call pinned. EACCES on a v1 container; EBUSY while a vaddr is
    /// invalidated (VFIO_UPDATE_VADDR); EINVAL when no emulated device is registered.
    /// </remarks>
    public KResult<int> PinPages(VfioDevice device, Iova iova, int npage, IommuProt prot, Span<Pfn> pfns)
    {
        ArgumentNullException.ThrowIfNull(device);

        // vfio_pin_pages() / vfio_device_container_pin_pages().
        if (npage <= 0 || pfns.Length < npage)
        {
            return Errno.EINVAL;
        }

        if (npage > PinPagesMaxEntries)
        {
            return Errno.E2BIG;
        }

        if (!V2)
        {
            return Errno.EACCES;
        }

        lock (_lock)
        {
            if (_vaddrInvalidCount > 0)
            {
                return Errno.EBUSY;
            }

            if (_devices.Count == 0)
            {
                return Errno.EINVAL;
            }

            var doAccounting = _domains.Count == 0;
            var pageSize = Geometry.PageSize;
            var i = 0;
            var error = Errno.None;
            for (; i < npage; i++)
            {
                var at = iova.Value + (pageSize * (ulong)i);
                var dma = FindFirstOverlap(at, at + (pageSize - 1));
                if (dma is null)
                {
                    error = Errno.EINVAL;
                    break;
                }

                if ((dma.Prot & prot) != prot)
                {
                    error = Errno.EPERM;
                    break;
                }

                // vfio_iova_get_vfio_pfn(): already pinned here, one more reference.
                if (dma.FindVpfn(at) is { } vpfn)
                {
                    vpfn.RefCount++;
                    pfns[i] = vpfn.Pfn;
                    continue;
                }

                var pinned = PinPageExternal(dma, dma.Vaddr + (at - dma.Iova), doAccounting);
                if (!pinned.TryGetValue(out var pfn))
                {
                    error = pinned.Error;
                    break;
                }

                dma.AddVpfn(at, pfn);
                pfns[i] = pfn;
                if (_dirtyTracking && dma.DirtyBitmap is { } bits)
                {
                    DirtyBitmap.Set(bits, (at - dma.Iova) >> BitOperations.TrailingZeroCount(MinPageSize()), 1);
                }
            }

            if (error != Errno.None)
            {
                // pin_unwind: drop the references this call took, page by page.
                pfns[i] = default;
                for (var j = 0; j < i; j++)
                {
                    var at = iova.Value + (pageSize * (ulong)j);
                    if (FindFirstOverlap(at, at + (pageSize - 1)) is { } dma)
                    {
                        UnpinPageExternal(dma, at, doAccounting);
                    }

                    pfns[j] = default;
                }

                return error;
            }

            // The device's group now reports what it dirties through its pins.
            if (device.Group is { } group && _domains.Any(d => d.Groups.Contains(group)) && _pinnedScopeGroups.Add(group))
            {
                _numNonPinnedGroups--;
            }

            return npage;
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Like vfio_iommu_type1_unpin_pages() (void since Linux 6.0): drops one reference per page;
    /// the last one unpins the page and, in a container without IOMMU domain, uncharges it. A page
    /// of a mapping that this container does not pin externally is skipped silently; the walk stops
    /// at the first page outside any mapping (the kernel WARNs there). v1 containers and requests
    /// outside 1..VFIO_PIN_PAGES_MAX_ENTRIES are ignored (WARN_ON in the kernel).
    /// </remarks>
    public void UnpinPages(VfioDevice device, Iova iova, int npage)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (npage <= 0 || npage > PinPagesMaxEntries || !V2)
        {
            return;
        }

        lock (_lock)
        {
            var doAccounting = _domains.Count == 0;
            var pageSize = Geometry.PageSize;
            for (var i = 0; i < npage; i++)
            {
                var at = iova.Value + (pageSize * (ulong)i);
                if (FindFirstOverlap(at, at + (pageSize - 1)) is not { } dma)
                {
                    break;
                }

                UnpinPageExternal(dma, at, doAccounting);
            }
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Like vfio_iommu_type1_dma_rw(): mapping by mapping, as copy_to_user()/copy_from_user() on the
    /// mapping's vaddr in its mm — nothing stays pinned. EINVAL for an empty buffer or an IOVA outside
    /// every mapping; EPERM for a mapping without READ (even to write), or without WRITE to write;
    /// EFAULT when the pages cannot be reached, or when called from a process other than the
    /// mapping's (a caller outside any process — a kthread — borrows the mapping's mm); EBUSY while
    /// a vaddr is invalidated. A write marks the pages dirty while tracking.
    /// </remarks>
    public KResult DmaRw(VfioDevice device, Iova iova, Span<byte> data, bool write)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (data.IsEmpty)
        {
            return Errno.EINVAL;
        }

        lock (_lock)
        {
            if (_vaddrInvalidCount > 0)
            {
                return Errno.EBUSY;
            }

            var at = iova.Value;
            var done = 0;
            while (done < data.Length)
            {
                // vfio_iommu_type1_dma_rw_chunk().
                var dma = FindFirstOverlap(at, at);
                if (dma is null)
                {
                    return Errno.EINVAL;
                }

                if ((write && (dma.Prot & IommuProt.Write) == 0) || (dma.Prot & IommuProt.Read) == 0)
                {
                    return Errno.EPERM;
                }

                var current = UserProcess.Current?.Mm;
                if (current is not null && !ReferenceEquals(current, dma.Mm))
                {
                    return Errno.EFAULT;
                }

                var offset = at - dma.Iova;
                var count = (int)Math.Min((ulong)(data.Length - done), dma.Size - offset);
                var copied = UserMemory.Copy(dma.Mm, dma.Vaddr + offset, data.Slice(done, count), toUser: write);
                if (!copied.IsOk)
                {
                    return Errno.EFAULT;
                }

                if (write && _dirtyTracking && dma.DirtyBitmap is { } bits)
                {
                    var shift = BitOperations.TrailingZeroCount(MinPageSize());
                    var firstPage = offset >> shift;
                    DirtyBitmap.Set(bits, firstPage, ((offset + (ulong)count - 1) >> shift) - firstPage + 1);
                }

                done += count;
                at += (ulong)count;
            }

            return KResult.Ok;
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Like vfio_iommu_type1_register_device(): from now on the device's DmaUnmap is called before
    /// any mapping it may have pinned in goes. Registering twice is a no-op.
    /// </remarks>
    public void RegisterDevice(VfioDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        lock (_lock)
        {
            lock (_deviceListLock)
            {
                if (!_devices.Contains(device))
                {
                    _devices.Add(device);
                }
            }
        }
    }

    /// <inheritdoc />
    /// <remarks>Like vfio_iommu_type1_unregister_device().</remarks>
    public void UnregisterDevice(VfioDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        lock (_lock)
        {
            lock (_deviceListLock)
            {
                _devices.Remove(device);
            }
        }
    }

    /// <summary>Emulated devices registered for DmaUnmap.</summary>
    internal int RegisteredDeviceCount
    {
        get
        {
            lock (_deviceListLock)
            {
                return _devices.Count;
            }
        }
    }

    // vfio_pin_page_external(): vaddr_get_pfns() for one page of dma->mm, then the page must have
    // a struct page (pfn_valid), and is charged to locked_vm when asked.
    private KResult<Pfn> PinPageExternal(VfioDma dma, ulong vaddr, bool doAccounting)
    {
        var mm = dma.Mm;
        var page = vaddr & ~(Geometry.PageSize - 1);
        var foll = FollFlags.LongTerm | ((dma.Prot & IommuProt.Write) != 0 ? FollFlags.Write : FollFlags.None);
        Span<PfnRun> run = stackalloc PfnRun[1];
        var pinned = Gup.PinUserPages(mm, page, 1, foll, run, out _);
        if (!pinned.IsOk)
        {
            // vaddr_get_pfns() falls back to the page tables of a VM_PFNMAP VMA: a pfn found there
            // without a struct page is not pinnable (EINVAL); RAM behind a VM_PFNMAP is EFAULT.
            return PfnmapPfn(mm, page, (dma.Prot & IommuProt.Write) != 0) is { } mmio
                ? (_machine.Memory.IsValidPfn(mmio) ? Errno.EFAULT : Errno.EINVAL)
                : pinned.Error;
        }

        var pfn = run[0].Start;
        if (doAccounting)
        {
            var accounted = mm.AccountLockedVm(1, increment: true);
            if (!accounted.IsOk)
            {
                Gup.UnpinPages(_machine.Memory, new PfnRun(pfn, 1), dirty: (dma.Prot & IommuProt.Write) != 0);
                return accounted.Error;
            }
        }

        return pfn;
    }

    // follow_fault_pfn() on a VM_PFNMAP VMA: the pfn mapped there, faulting it in once; null when
    // the address is not in such a VMA or nothing can be mapped there.
    private static Pfn? PfnmapPfn(MmStruct mm, ulong vaddr, bool write)
    {
        mm.MmapLock.EnterReadLock();
        try
        {
            var vma = mm.FindVma(vaddr);
            if (vma is null || !vma.IsPfnMap)
            {
                return null;
            }

            var entry = Gup.FollowPfnmap(mm, vaddr);
            if (!entry.IsOk && Gup.FixupUserFault(mm, vaddr, write).IsOk)
            {
                entry = Gup.FollowPfnmap(mm, vaddr);
            }

            return entry.IsOk && (!write || entry.Value.Writable) ? entry.Value.Pfn : null;
        }
        finally
        {
            mm.MmapLock.ExitReadLock();
        }
    }

    // vfio_unpin_page_external() + vfio_iova_put_vfio_pfn(): the last reference unpins (put_pfn,
    // dirtying a writable mapping's page) and, when asked, uncharges.
    private void UnpinPageExternal(VfioDma dma, ulong iova, bool doAccounting)
    {
        if (dma.FindVpfn(iova) is not { } vpfn)
        {
            return;
        }

        if (--vpfn.RefCount > 0)
        {
            return;
        }

        Gup.UnpinPages(_machine.Memory, new PfnRun(vpfn.Pfn, 1), dirty: (dma.Prot & IommuProt.Write) != 0);
        dma.RemoveVpfn(vpfn);
        if (doAccounting)
        {
            dma.Mm.AccountLockedVm(1, increment: false);
        }
    }
}
