using KernelModel.Kernel;

namespace KernelModel.Iommu;

/// <summary>Types of reserved region (enum iommu_resv_type), kernel values.</summary>
public enum ReservedRegionType
{
    /// <summary>IOMMU_RESV_DIRECT: must stay identity mapped.</summary>
    Direct = 0,
    /// <summary>IOMMU_RESV_DIRECT_RELAXABLE.</summary>
    DirectRelaxable = 1,
    /// <summary>IOMMU_RESV_RESERVED: never mapped.</summary>
    Reserved = 2,
    /// <summary>IOMMU_RESV_MSI: a hardware MSI window (x86: 0xfee00000–0xfeefffff).</summary>
    Msi = 3,
    /// <summary>IOMMU_RESV_SW_MSI: a software-managed MSI window.</summary>
    SwMsi = 4,
}

/// <summary>A reserved IOVA region of a group (struct iommu_resv_region), inclusive bounds.</summary>
public readonly record struct ReservedRegion(Iova Start, Iova Last, ReservedRegionType Type)
{
    /// <inheritdoc />
    public override string ToString() => $"0x{Start.Value:x16} 0x{Last.Value:x16} {Type.ToString().ToLowerInvariant()}";
}

/// <summary>
/// An IOMMU group: the smallest set of devices the IOMMU can isolate from the rest. A group is
/// attached to at most one domain at a time; without a domain its DMA is blocked.
/// </summary>
public sealed class IommuGroup
{
    private readonly List<Device> _devices = [];
    private readonly Lock _lock = new();

    internal IommuGroup(IommuGroupId id, IReadOnlyList<ReservedRegion> reserved)
    {
        Id = id;
        ReservedRegions = reserved;
    }

    /// <summary>The group number.</summary>
    public IommuGroupId Id { get; }

    /// <summary>The devices in the group.</summary>
    public IReadOnlyList<Device> Devices => _devices;

    /// <summary>iommu_get_group_resv_regions(): the group's reserved regions.</summary>
    public IReadOnlyList<ReservedRegion> ReservedRegions { get; }

    /// <summary>The domain the group is attached to, or null (DMA blocked).</summary>
    public IommuDomain? Domain { get; private set; }

    internal void AddDevice(Device device) => _devices.Add(device);

    /// <summary>iommu_attach_group(): EBUSY when already attached to a domain.</summary>
    public KResult Attach(IommuDomain domain)
    {
        lock (_lock)
        {
            if (Domain is not null)
            {
                return Errno.EBUSY;
            }

            Domain = domain;
            return KResult.Ok;
        }
    }

    /// <summary>iommu_detach_group(): EINVAL when the group is not attached to <paramref name="domain"/>.</summary>
    public KResult Detach(IommuDomain domain)
    {
        lock (_lock)
        {
            if (!ReferenceEquals(Domain, domain))
            {
                return Errno.EINVAL;
            }

            Domain = null;
            return KResult.Ok;
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"iommu group {Id}";
}

/// <summary>An IOMMU fault: DMA to an IOVA its group's domain does not map (or maps without that permission).</summary>
public sealed record IommuFault(string Device, Iova Iova, bool Write, string Reason)
{
    /// <inheritdoc />
    public override string ToString() => $"DMAR: [{(Write ? "DMA Write" : "DMA Read")}] Request device [{Device}] fault addr 0x{Iova.Value:x}: {Reason}";
}
