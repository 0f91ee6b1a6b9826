using System.Composition;
using KernelModel.Iommu;
using KernelModel.Kernel;

namespace KernelModel.Vfio;

/// <summary>
/// An IOMMU backend (struct vfio_iommu_driver_ops): chosen by VFIO_SET_IOMMU among the loaded
/// plugins. Export it with <see cref="VfioIommuBackendAttribute"/>.
/// </summary>
public interface IVfioIommuBackend
{
    /// <summary>
    /// VFIO_CHECK_EXTENSION asked of the backend with no container state: a positive value when
    /// it supports <paramref name="extension"/>, 0 otherwise.
    /// </summary>
    long CheckExtension(ulong extension);

    /// <summary>
    /// open(): per-container state for the IOMMU model <paramref name="type"/> (an extension this
    /// backend supports), or an errno.
    /// </summary>
    KResult<IVfioIommuContainer> Open(VfioIommuContext context, ulong type);
}

/// <summary>The per-container state of an IOMMU backend (iommu_data).</summary>
public interface IVfioIommuContainer
{
    /// <summary>Container ioctls the core does not handle itself (MAP_DMA, GET_INFO, CHECK_EXTENSION, ...).</summary>
    long Ioctl(uint request, IoctlArg arg);

    /// <summary>attach_group(): make the group's DMA go through this container's mappings.</summary>
    KResult AttachGroup(IommuGroup group);

    /// <summary>detach_group(): the group leaves; after the last one, every mapping is dropped.</summary>
    void DetachGroup(IommuGroup group);

    /// <summary>release(): the container is gone.</summary>
    void Release();
}

/// <summary>
/// The optional table for emulated (mdev) devices: pin and unpin guest pages, and copy through
/// the IOVA space. A backend that supports it implements this interface too (detected with is).
/// </summary>
public interface IVfioIommuEmulatedAccess
{
    /// <summary>pin_pages(): pins npage pages at iova; the pfns are written to <paramref name="pfns"/>. Returns pages pinned or an errno.</summary>
    KResult<int> PinPages(VfioDevice device, Iova iova, int npage, IommuProt prot, Span<Pfn> pfns);

    /// <summary>unpin_pages().</summary>
    void UnpinPages(VfioDevice device, Iova iova, int npage);

    /// <summary>dma_rw(): copies to or from the IOVA space as the CPU would through the pinned mappings.</summary>
    KResult DmaRw(VfioDevice device, Iova iova, Span<byte> data, bool write);

    /// <summary>register_device(): an emulated device that must be told (its DmaUnmap) when a range it pinned is unmapped.</summary>
    void RegisterDevice(VfioDevice device);

    /// <summary>unregister_device().</summary>
    void UnregisterDevice(VfioDevice device);
}

/// <summary>What the core gives a backend at open: the machine and the services of the vfio core.</summary>
public sealed class VfioIommuContext
{
    internal VfioIommuContext(Machine machine, VfioCore core)
    {
        Machine = machine;
        Core = core;
    }

    /// <summary>The machine (memory, IOMMU domains, settings, workqueue).</summary>
    public Machine Machine { get; }

    /// <summary>The vfio core (VMA → device lookup).</summary>
    public VfioCore Core { get; }
}

/// <summary>
/// A bus type (struct bus_type): builds its device model for the machine's devices on that bus.
/// Export it with <see cref="BusTypeAttribute"/>.
/// </summary>
public interface IBusType
{
    /// <summary>Builds the bus's model of <paramref name="device"/> (config space, registers) from its spec.</summary>
    KResult Setup(Machine machine, Device device);
}

/// <summary>
/// A vfio bus driver (vfio-pci, vfio-platform, ...): probe produces a registered
/// <see cref="VfioDevice"/>; remove unregisters it. Export it with <see cref="VfioBusDriverAttribute"/>.
/// </summary>
public interface IVfioBusDriver
{
    /// <summary>probe(): build the driver's device for <paramref name="device"/> and register it with the core.</summary>
    KResult<VfioDevice> Probe(VfioCore core, Device device);

    /// <summary>remove(): unregister and dispose of the driver's device.</summary>
    void Remove(VfioCore core, VfioDevice device);
}

/// <summary>Exports an IOMMU backend with its metadata.</summary>
[MetadataAttribute]
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class VfioIommuBackendAttribute(string name) : ExportAttribute(typeof(IVfioIommuBackend))
{
    /// <summary>The backend's name (e.g. "vfio-iommu-type1").</summary>
    public string Name { get; } = name;

    /// <summary>The VFIO extensions it supports (VFIO_TYPE1_IOMMU, ...), for listings.</summary>
    public ulong[] Extensions { get; set; } = [];
}

/// <summary>Exports a bus type with its metadata.</summary>
[MetadataAttribute]
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class BusTypeAttribute(string name) : ExportAttribute(typeof(IBusType))
{
    /// <summary>The bus name as machine specs use it ("pci").</summary>
    public string Name { get; } = name;
}

/// <summary>Exports a vfio bus driver with its metadata.</summary>
[MetadataAttribute]
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class VfioBusDriverAttribute(string name, string bus) : ExportAttribute(typeof(IVfioBusDriver))
{
    /// <summary>The driver name as sysfs binds it ("vfio-pci").</summary>
    public string Name { get; } = name;

    /// <summary>The bus it drives.</summary>
    public string Bus { get; } = bus;
}

/// <summary>Events of the vfio device notifier chain.</summary>
public enum VfioDeviceEvent : ulong
{
    /// <summary>The device's user released it (its last fd closed): drop anything that depends on the device.</summary>
    Release = 1,
}
