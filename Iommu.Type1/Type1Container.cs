using KernelModel.Kernel;
using KernelModel.Mm;
using KernelModel.Uapi;
using KernelModel.Vfio;

namespace KernelModel.Iommu.Type1;

/// <summary>
/// The per-container state of the type1 backend (struct vfio_iommu): its domains with their
/// groups, the user's DMA mappings, the emulated devices that pin through it, and the ioctls on
/// them. The ioctls, the map and unmap paths, dirty tracking and emulated access live in the
/// other parts of this partial class.
/// </summary>
/// <remarks>
/// <para>Lock order: <c>_lock</c> (iommu->lock) → <c>_deviceListLock</c> (iommu->device_list_lock)
/// → the caller's mmap_lock (read) → a domain's own lock. Calls to an emulated device's DmaUnmap
/// are made holding <c>_deviceListLock</c> but not <c>_lock</c>, since the device unpins through
/// this container (vfio_notify_dma_unmap()). Nothing that can call back into the vfio core
/// (notifier unregistration, device puts, container-user puts) runs under <c>_lock</c>: those go
/// to the system workqueue.</para>
/// </remarks>
internal sealed partial class Type1Container : IVfioIommuContainer
{
    // A few recycled vfio_dma entries: enough for a steady state of map/unmap to allocate nothing.
    private const int FreeDmaLimit = 64;

    private readonly VfioIommuContext _context;
    private readonly Machine _machine;
    private readonly Lock _lock = new();
    private readonly Lock _deviceListLock = new();
    private readonly List<DomainEntry> _domains = [];
    private readonly List<VfioDma> _dmas = [];   // sorted by Iova, never overlapping
    private readonly Stack<VfioDma> _freeDmas = new();
    private readonly List<VfioDevice> _devices = [];   // iommu->device_list: emulated devices to tell on unmap
    private readonly HashSet<IommuGroup> _pinnedScopeGroups = [];   // groups with pinned_page_dirty_scope
    private List<(ulong Start, ulong Last)> _iovaList = [];   // iommu->iova_list
    private int _numNonPinnedGroups;
    private int _dmaAvail;
    private int _vaddrInvalidCount;
    private bool _dirtyTracking;
    private bool _released;

    public Type1Container(VfioIommuContext context, bool v2)
    {
        _context = context;
        _machine = context.Machine;
        V2 = v2;
        _dmaAvail = _machine.Settings.DmaEntryLimit;
    }

    /// <summary>VFIO_TYPE1v2_IOMMU semantics (no partial unmaps of a mapping).</summary>
    public bool V2 { get; }

    private PageGeometry Geometry => _machine.Geometry;

    // ================================================================ extensions

    /// <summary>
    /// Like vfio_iommu_type1_check_extension(). UPDATE_VADDR is answered only with a container
    /// (the model has no emulated IOMMU groups, so it is then 1); DMA_CC asks whether every domain
    /// enforces cache coherency, which the model's domains always do — so 1, also with none.
    /// </summary>
    public static long CheckExtension(Type1Container? iommu, ulong extension) => extension switch
    {
        VfioUapi.VFIO_TYPE1_IOMMU or VfioUapi.VFIO_TYPE1v2_IOMMU or VfioUapi.VFIO_UNMAP_ALL => 1,
        VfioUapi.VFIO_UPDATE_VADDR => iommu is null ? 0 : 1,
        VfioUapi.VFIO_DMA_CC_IOMMU => iommu is null ? 0 : 1,
        _ => 0,
    };

    // ================================================================ ioctl

    /// <inheritdoc />
    /// <remarks>Like vfio_iommu_type1_ioctl().</remarks>
    public long Ioctl(uint request, IoctlArg arg) => request switch
    {
        VfioUapi.VFIO_CHECK_EXTENSION => CheckExtension(this, arg.Value),
        VfioUapi.VFIO_IOMMU_GET_INFO => GetInfo(arg),
        VfioUapi.VFIO_IOMMU_MAP_DMA => MapDmaIoctl(arg),
        VfioUapi.VFIO_IOMMU_UNMAP_DMA => UnmapDmaIoctl(arg),
        VfioUapi.VFIO_IOMMU_DIRTY_PAGES => DirtyPagesIoctl(arg),
        _ => -(long)Errno.ENOTTY,
    };

    // ================================================================ attach / detach / release

    /// <inheritdoc />
    /// <remarks>
    /// Like vfio_iommu_type1_attach_group(): EBUSY while some vaddr is invalidated (attach may need
    /// to pin); EINVAL for a group already here or one whose reserved regions would cover an
    /// existing mapping. A compatible existing domain is reused; otherwise a new domain is
    /// allocated and the existing mappings are replayed into it. Every group here is IOMMU backed
    /// (the model's core has no emulated IOMMU groups), so each one starts outside the pinned-page
    /// dirty scope.
    /// </remarks>
    public KResult AttachGroup(IommuGroup group)
    {
        lock (_lock)
        {
            if (_vaddrInvalidCount > 0)
            {
                return Errno.EBUSY;
            }

            if (_released || _domains.Any(d => d.Groups.Contains(group)))
            {
                return Errno.EINVAL;
            }

            var candidate = _machine.AllocateDomain();

            // vfio_iommu_aper_conflict() / vfio_iommu_resv_conflict(): existing mappings must stay valid.
            var ranges = ComputeIovaRanges(extraDomain: candidate, extraGroup: group);
            foreach (var dma in _dmas)
            {
                if (dma.Size != 0 && !RangeIsValid(ranges, dma.Iova, dma.Last))
                {
                    return Errno.EINVAL;
                }
            }

            // Every domain of this machine's IOMMU has the same format and page sizes, so like the
            // kernel (which tries iommu_attach_group on each existing domain first) the group joins
            // a compatible domain when there is one.
            var joined = false;
            foreach (var entry in _domains)
            {
                if (entry.Domain.Format == candidate.Format && entry.Domain.PageSizeBitmap == candidate.PageSizeBitmap)
                {
                    var attachedToExisting = group.Attach(entry.Domain);
                    if (!attachedToExisting.IsOk)
                    {
                        return attachedToExisting;
                    }

                    entry.Groups.Add(group);
                    joined = true;
                    break;
                }
            }

            if (!joined)
            {
                var attached = group.Attach(candidate);
                if (!attached.IsOk)
                {
                    return attached;
                }

                var replayed = Replay(candidate);
                if (!replayed.IsOk)
                {
                    group.Detach(candidate);
                    return replayed;
                }

                _domains.Add(new DomainEntry(candidate, [group]));
            }

            _iovaList = ranges;
            _numNonPinnedGroups++;
            return KResult.Ok;
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Like vfio_iommu_type1_detach_group(): the group leaves its domain; an emptied domain goes,
    /// and when it was the last one every mapping is unmapped, unpinned and unaccounted
    /// (vfio_iommu_unmap_unpin_all()). A group that could dirty memory without reporting it leaves
    /// the dirty scope: while tracking, every mapped page is then reported dirty.
    /// </remarks>
    public void DetachGroup(IommuGroup group)
    {
        lock (_lock)
        {
            var entry = _domains.FirstOrDefault(d => d.Groups.Contains(group));
            if (entry is null)
            {
                return;
            }

            if (entry.Groups.Count == 1)
            {
                if (_domains.Count == 1)
                {
                    RemoveAllDmas();
                }
                else
                {
                    // iommu_domain_free() drops this domain's page tables; the pins stay tracked
                    // through the remaining domains, so only this domain's IOPTEs go.
                    foreach (var dma in _dmas)
                    {
                        if (dma.Size != 0)
                        {
                            entry.Domain.Unmap(new Iova(dma.Iova), dma.Size);
                        }
                    }

                    _domains.Remove(entry);
                }
            }

            group.Detach(entry.Domain);
            entry.Groups.Remove(group);
            if (entry.Groups.Count == 0)
            {
                _domains.Remove(entry);
            }

            _iovaList = ComputeIovaRanges(null, null);
            if (!_pinnedScopeGroups.Remove(group))
            {
                _numNonPinnedGroups--;
                if (_dirtyTracking)
                {
                    PopulateBitmapsFull();
                }
            }
        }
    }

    /// <inheritdoc />
    /// <remarks>Like vfio_iommu_type1_release(): every mapping goes, then every domain.</remarks>
    public void Release()
    {
        lock (_lock)
        {
            _released = true;
            RemoveAllDmas();
            foreach (var entry in _domains)
            {
                foreach (var group in entry.Groups)
                {
                    group.Detach(entry.Domain);
                }
            }

            _domains.Clear();
            _iovaList = [];
            _pinnedScopeGroups.Clear();
            _numNonPinnedGroups = 0;
        }
    }

    // Like vfio_iommu_replay(): a new domain gets every existing mapping, translated through the
    // first domain (which holds the pins) so nothing is pinned twice. The kernel pins here the
    // mappings of a container that had no IOMMU domain yet (only emulated groups); the model's
    // containers always have one from their first group on, so every mapping is already mapped.
    private KResult Replay(IommuDomain target)
    {
        if (_dmas.Count == 0 || _domains.Count == 0)
        {
            return KResult.Ok;
        }

        var source = _domains[0].Domain;
        var pageSize = Geometry.PageSize;
        foreach (var dma in _dmas)
        {
            ulong done = 0;
            while (done < dma.Size)
            {
                var iova = dma.Iova + done;
                if (!source.TryIovaToPhys(new Iova(iova), out var phys))
                {
                    UnmapReplayed(target, dma, done);
                    return Errno.EFAULT;
                }

                // Gather the physically contiguous stretch, page by page.
                ulong n = pageSize;
                while (done + n < dma.Size
                    && source.TryIovaToPhys(new Iova(iova + n), out var next)
                    && next.Value == phys.Value + n)
                {
                    n += pageSize;
                }

                var mapped = target.Map(new Iova(iova), phys, n, dma.Prot);
                if (!mapped.IsOk)
                {
                    UnmapReplayed(target, dma, done);
                    return mapped;
                }

                done += n;
            }
        }

        return KResult.Ok;

        void UnmapReplayed(IommuDomain domain, VfioDma failedAt, ulong failedDone)
        {
            foreach (var dma in _dmas)
            {
                var size = ReferenceEquals(dma, failedAt) ? failedDone : dma.Size;
                if (size != 0)
                {
                    domain.Unmap(new Iova(dma.Iova), size);
                }

                if (ReferenceEquals(dma, failedAt))
                {
                    break;
                }
            }
        }
    }

    // ================================================================ page sizes and IOVA ranges

    // vfio_update_pgsize_bitmap(): the page sizes every domain supports, with sub-PAGE_SIZE sizes
    // folded into PAGE_SIZE. With no domain, every size from PAGE_SIZE up.
    private ulong PageSizeBitmap()
    {
        var bitmap = ~(Geometry.PageSize - 1);
        foreach (var entry in _domains)
        {
            bitmap &= entry.Domain.PageSizeBitmap;
        }

        if ((bitmap & (Geometry.PageSize - 1)) != 0)
        {
            bitmap &= ~(Geometry.PageSize - 1);
            bitmap |= Geometry.PageSize;
        }

        return bitmap;
    }

    private ulong MinPageSize()
    {
        var bitmap = PageSizeBitmap();
        return bitmap & (~bitmap + 1);
    }

    // The iova_list: the intersection of the domains' apertures minus every non-relaxable reserved
    // region of every attached group (vfio_iommu_aper_resize() + vfio_iommu_resv_exclude()). Kept
    // in _iovaList, recomputed only at attach and detach, as the kernel keeps iommu->iova_list.
    private List<(ulong Start, ulong Last)> ComputeIovaRanges(IommuDomain? extraDomain, IommuGroup? extraGroup)
    {
        var domains = _domains.Select(d => d.Domain).ToList();
        if (extraDomain is not null)
        {
            domains.Add(extraDomain);
        }

        var ranges = new List<(ulong Start, ulong Last)>();
        if (domains.Count == 0)
        {
            return ranges;
        }

        var start = domains.Max(d => d.ApertureStart.Value);
        var last = domains.Min(d => d.ApertureEnd.Value);
        if (start > last)
        {
            return ranges;
        }

        ranges.Add((start, last));
        var groups = _domains.SelectMany(d => d.Groups).ToList();
        if (extraGroup is not null)
        {
            groups.Add(extraGroup);
        }

        foreach (var resv in groups.SelectMany(g => g.ReservedRegions))
        {
            if (resv.Type == ReservedRegionType.DirectRelaxable)
            {
                continue;
            }

            var next = new List<(ulong Start, ulong Last)>(ranges.Count + 1);
            foreach (var (s, l) in ranges)
            {
                if (resv.Last.Value < s || resv.Start.Value > l)
                {
                    next.Add((s, l));
                    continue;
                }

                if (resv.Start.Value > s)
                {
                    next.Add((s, resv.Start.Value - 1));
                }

                if (resv.Last.Value < l)
                {
                    next.Add((resv.Last.Value + 1, l));
                }
            }

            ranges = next;
        }

        return ranges;
    }

    // vfio_iommu_iova_dma_valid(): inside one range; anything goes while the list is empty.
    private static bool RangeIsValid(List<(ulong Start, ulong Last)> ranges, ulong start, ulong last)
    {
        if (ranges.Count == 0)
        {
            return true;
        }

        foreach (var (s, l) in ranges)
        {
            if (start >= s && last <= l)
            {
                return true;
            }
        }

        return false;
    }

    // ================================================================ removal

    // vfio_remove_dma(): unmap and unpin, unlink, give the entry back. The kernel WARNs when the
    // pfn_list is not empty here; callers make sure emulated devices unpinned first (the unmap
    // path and the device-release path notify and retry), and a container is only released
    // after every device fd, so every emulated device, is closed. A device binding is dropped
    // from the workqueue: its notifier may not be unregistered under our lock (the core may call
    // back into this container from there) nor from inside the device's chain.
    private void RemoveDma(VfioDma dma)
    {
        if (dma.Pfnmap is { } binding)
        {
            dma.Pfnmap = null;
            ScheduleUnbind(binding);
        }

        UnmapUnpin(dma);
        _dmas.Remove(dma);
        _dmaAvail++;
        if (dma.VaddrInvalid)
        {
            dma.VaddrInvalid = false;
            _vaddrInvalidCount--;
        }

        dma.DirtyBitmap = null;
        if (_freeDmas.Count < FreeDmaLimit && !dma.HasExternalPins)
        {
            _freeDmas.Push(dma);
        }
    }

    private void RemoveAllDmas()
    {
        while (_dmas.Count > 0)
        {
            RemoveDma(_dmas[^1]);
        }
    }

    // vfio_unmap_unpin(): every domain but the first just drops the range; the first one is the
    // record of what is pinned, so it is walked leaf by leaf and each RAM leaf is unpinned and
    // uncharged (MMIO has nothing to unpin). Pages that an emulated device also pinned would stay
    // charged (vfio_unpin_pages_remote()'s "locked"), but a mapping only gets here once its
    // pfn_list is empty.
    private void UnmapUnpin(VfioDma dma)
    {
        if (dma.Size == 0 || _domains.Count == 0)
        {
            return;
        }

        for (var i = 1; i < _domains.Count; i++)
        {
            _domains[i].Domain.Unmap(new Iova(dma.Iova), dma.Size);
        }

        var domain = _domains[0].Domain;
        var shift = Geometry.PageShift;
        var pageSize = Geometry.PageSize;
        var dirty = (dma.Prot & IommuProt.Write) != 0;
        long unlocked = 0;
        ulong done = 0;
        while (done < dma.Size)
        {
            var iova = dma.Iova + done;
            if (!domain.TryIovaToPhys(new Iova(iova), out var phys))
            {
                done += pageSize;
                continue;
            }

            var unmappedBytes = domain.Unmap(new Iova(iova), pageSize);
            if (unmappedBytes == 0)
            {
                done += pageSize;
                continue;
            }

            // A leaf never spans two mappings, so the leaf starts at iova and phys is its start.
            if (_machine.Memory.IsRam(phys.Value))
            {
                var pages = unmappedBytes >> shift;
                Gup.UnpinPages(_machine.Memory, new PfnRun(new Pfn(phys.Value >> shift), pages), dirty);
                unlocked += (long)pages;
            }

            done += unmappedBytes;
        }

        dma.IommuMapped = false;
        if (unlocked != 0)
        {
            dma.Mm.AccountLockedVm(unlocked, increment: false);
        }
    }

    private void ScheduleUnbind(PfnmapBinding binding)
    {
        if (!binding.TryBeginRelease())
        {
            return;
        }

        // Like unregister_device_bg() of RFC 10/10.
        _machine.SystemWorkqueue.Schedule(() =>
        {
            binding.Device.UnregisterNotifier(binding.Block);
            binding.Device.Put();
        }, $"type1: drop {binding.Device.Name}");
    }

    /// <summary>
    /// The device notifier callback of RFC 10/10 (vfio_device_nb_cb): on Release every mapping that
    /// holds this device is removed from every domain — after its external pins, as RFC 08/10's
    /// unmap_dma_pfn_list() shares that step with UNMAP_DMA: emulated devices are told to unpin,
    /// with the same bounded retry — and the unregistration is deferred to the system workqueue,
    /// since unregistering from inside the chain would deadlock (EDEADLK here).
    /// </summary>
    internal void OnPfnmapDeviceReleased(PfnmapBinding binding)
    {
        var retry = new ExternalPinRetry();
        lock (_lock)
        {
            while (FindBound(binding) is { } dma)
            {
                if (dma.HasExternalPins)
                {
                    retry.Count(dma, "vfio_device_nb_cb");
                    NotifyDmaUnmap(dma);
                    continue;
                }

                RemoveDma(dma);
            }
        }

        ScheduleUnbind(binding);

        VfioDma? FindBound(PfnmapBinding b)
        {
            foreach (var dma in _dmas)
            {
                if (ReferenceEquals(dma.Pfnmap, b))
                {
                    return dma;
                }
            }

            return null;
        }
    }

    // ================================================================ the dma list

    // A recycled entry, or a new one: kzalloc(sizeof(*dma)) in vfio_dma_do_map().
    private VfioDma NewDma(ulong iova, ulong vaddr, IommuProt prot, MmStruct mm)
    {
        var dma = _freeDmas.Count > 0 ? _freeDmas.Pop() : new VfioDma();
        dma.Reset(iova, vaddr, prot, mm);
        return dma;
    }

    private void Link(VfioDma dma)
    {
        var lo = 0;
        var hi = _dmas.Count;
        while (lo < hi)
        {
            var mid = (lo + hi) / 2;
            if (_dmas[mid].Iova < dma.Iova)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        _dmas.Insert(lo, dma);
    }

    // The first mapping (by iova) that intersects [start, last], as an index; -1 when none.
    // A mapping still being built (Size 0) covers only its first page for overlap purposes.
    private int FirstOverlapIndex(ulong start, ulong last)
    {
        var lo = 0;
        var hi = _dmas.Count;
        while (lo < hi)
        {
            var mid = (lo + hi) / 2;
            if (LastOf(_dmas[mid]) < start)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo < _dmas.Count && _dmas[lo].Iova <= last ? lo : -1;

        static ulong LastOf(VfioDma d) => d.Size == 0 ? d.Iova : d.Last;
    }

    // vfio_find_dma() for [start, last].
    private VfioDma? FindFirstOverlap(ulong start, ulong last)
    {
        var i = FirstOverlapIndex(start, last);
        return i < 0 ? null : _dmas[i];
    }

    private sealed record DomainEntry(IommuDomain Domain, List<IommuGroup> Groups);

    /// <summary>
    /// The bounded retry of vfio_dma_do_unmap() (and RFC 08/10's unmap_dma_pfn_list()): emulated
    /// devices are told again while the same mapping keeps external pins, and the eleventh retry on
    /// one mapping is BUG_ON(++retries &gt; 10), which the model raises as a kernel bug (an oops at
    /// the syscall boundary, -EIO to the caller).
    /// </summary>
    private struct ExternalPinRetry
    {
        private const int MaxRetries = 10;
        private VfioDma? _last;
        private int _retries;

        public void Count(VfioDma dma, string where)
        {
            if (ReferenceEquals(_last, dma))
            {
                if (++_retries > MaxRetries)
                {
                    throw new InvalidOperationException(
                        $"kernel BUG at {where}: {dma} still has {dma.PfnList!.Count} externally pinned pages after {MaxRetries} dma_unmap retries");
                }
            }
            else
            {
                _last = dma;
                _retries = 0;
            }
        }
    }
}
