using KernelModel.Iommu;
using KernelModel.Kernel;
using KernelModel.Vfio;

namespace KernelModel.Tests.Type1;

/// <summary>
/// An emulated device (an mdev vendor driver's, in miniature) for tests of the type1 backend's
/// <see cref="IVfioIommuEmulatedAccess"/>: at open it finds its container's backend through
/// <see cref="VfioCore.TryGetIommuFor"/> and registers for DmaUnmap; it pins and copies through
/// the backend on the test's behalf, keeps a count of what it pinned per IOVA, and on DmaUnmap
/// unpins everything it holds in the range — unless <see cref="IgnoreDmaUnmap"/>, which makes it
/// the misbehaving driver the kernel's bounded retry is for. Close unpins the rest and unregisters.
/// </summary>
internal sealed class EmulatedTestDevice(Device device, ulong pageSize) : VfioDevice(device)
{
    private readonly Dictionary<ulong, int> _pins = [];
    private IVfioIommuEmulatedAccess? _access;

    /// <summary>Every DmaUnmap the backend sent, in order.</summary>
    public List<(Iova Iova, ulong Length)> DmaUnmaps { get; } = [];

    /// <summary>When set, DmaUnmap is recorded but nothing is unpinned.</summary>
    public bool IgnoreDmaUnmap { get; set; }

    /// <summary>Pin references this device holds (a page pinned twice counts twice).</summary>
    public int PinnedPages => _pins.Values.Sum();

    public bool IsRegisteredWithBackend => _access is not null;

    public IVfioIommuEmulatedAccess Access => _access ?? throw new InvalidOperationException("device not open");

    private ulong PageSize { get; } = pageSize;

    /// <summary>vfio_pin_pages() on the device's behalf; what succeeds is remembered for unpinning.</summary>
    public KResult<int> Pin(ulong iova, int npage, IommuProt prot, Span<Pfn> pfns)
    {
        var pinned = Access.PinPages(this, new Iova(iova), npage, prot, pfns);
        if (pinned.IsOk)
        {
            for (var i = 0; i < npage; i++)
            {
                var at = iova + ((ulong)i * PageSize);
                _pins[at] = _pins.GetValueOrDefault(at) + 1;
            }
        }

        return pinned;
    }

    public Pfn PinOne(ulong iova, IommuProt prot = IommuProt.Read | IommuProt.Write)
    {
        Span<Pfn> pfn = stackalloc Pfn[1];
        var pinned = Pin(iova, 1, prot, pfn);
        Assert.True(pinned.IsOk, $"pin 0x{iova:x}: {pinned}");
        return pfn[0];
    }

    /// <summary>vfio_unpin_pages() of one page, forgetting one of this device's references to it.</summary>
    public void UnpinOne(ulong iova)
    {
        Access.UnpinPages(this, new Iova(iova), 1);
        if (_pins.TryGetValue(iova, out var n))
        {
            if (n == 1)
            {
                _pins.Remove(iova);
            }
            else
            {
                _pins[iova] = n - 1;
            }
        }
    }

    protected internal override KResult OpenDevice()
    {
        if (Core is not { } core || !core.TryGetIommuFor(this, out var iommu) || iommu is not IVfioIommuEmulatedAccess access)
        {
            return Errno.EINVAL;
        }

        _access = access;
        access.RegisterDevice(this);
        return KResult.Ok;
    }

    protected internal override void CloseDevice()
    {
        foreach (var iova in _pins.Keys.ToList())
        {
            while (_pins.ContainsKey(iova))
            {
                UnpinOne(iova);
            }
        }

        _access?.UnregisterDevice(this);
        _access = null;
    }

    // Like an mdev driver's dma_unmap: unpin every page it pinned in the range, before returning.
    protected internal override void DmaUnmap(Iova iova, ulong length)
    {
        DmaUnmaps.Add((iova, length));
        if (IgnoreDmaUnmap)
        {
            return;
        }

        foreach (var at in _pins.Keys.Where(a => a >= iova.Value && a - iova.Value < length).ToList())
        {
            while (_pins.ContainsKey(at))
            {
                UnpinOne(at);
            }
        }
    }
}
