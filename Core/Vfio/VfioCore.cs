using KernelModel.Iommu;
using KernelModel.Kernel;
using KernelModel.Mm;

namespace KernelModel.Vfio;

/// <summary>
/// The vfio core of a machine: registered devices, groups (/dev/vfio/N), containers
/// (/dev/vfio/vfio) and the IOMMU backends they may use.
/// <para>Lock order: core lock → group_lock → container lock. The core's lock guards the device
/// and group tables and may nest a group's lock (its device list), never the reverse; it is never
/// held across a call into a driver or a backend. A group's lock may be held across backend
/// attach/detach.</para>
/// </summary>
public sealed class VfioCore
{
    /// <summary>The container node.</summary>
    public const string ContainerPath = "/dev/vfio/vfio";

    private readonly Dictionary<int, VfioGroup> _groups = [];
    private readonly List<VfioDevice> _devices = [];
    private readonly Lock _lock = new();

    internal VfioCore(Machine machine, IReadOnlyList<(string Name, IVfioIommuBackend Backend)> backends)
    {
        Machine = machine;
        Backends = backends;
        IommuContext = new VfioIommuContext(machine, this);
        machine.RegisterDevNode(ContainerPath, () => new File(VfioContainerFile.Instance, new Inode("vfio"), new VfioContainer(this)));
    }

    /// <summary>The machine.</summary>
    public Machine Machine { get; }

    /// <summary>The IOMMU backends, in the order SET_IOMMU tries them.</summary>
    public IReadOnlyList<(string Name, IVfioIommuBackend Backend)> Backends { get; }

    internal VfioIommuContext IommuContext { get; }

    /// <summary>The registered devices.</summary>
    public IReadOnlyList<VfioDevice> Devices
    {
        get
        {
            lock (_lock)
            {
                return [.. _devices];
            }
        }
    }

    /// <summary>
    /// The IOMMU backend state of the container <paramref name="device"/>'s group is set to
    /// (device->group->container->iommu_data): how a driver of an emulated device reaches the
    /// backend's optional <see cref="IVfioIommuEmulatedAccess"/> (detect it with <c>is</c>), the
    /// model's stand-in for vfio_pin_pages()/vfio_unpin_pages()/vfio_dma_rw() routing through the
    /// container. False when the group has no container or the container no backend yet. The
    /// answer holds while the device is open: a group's container cannot change then. Unlike
    /// vfio_device_container_register(), the core does not register the device with the backend
    /// at open; the driver calls <see cref="IVfioIommuEmulatedAccess.RegisterDevice"/> itself.
    /// </summary>
    public bool TryGetIommuFor(VfioDevice device, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out IVfioIommuContainer? iommu)
    {
        iommu = null;
        if (device.Group is not { } iommuGroup || !TryGetGroup(iommuGroup.Id, out var group))
        {
            return false;
        }

        lock (group.GroupLock)
        {
            iommu = group.Container?.Iommu;
        }

        return iommu is not null;
    }

    /// <summary>
    /// vfio_register_group_dev(): registers a driver's device and returns it, typed. EINVAL when the
    /// device has no IOMMU group; EBUSY when it (or another handle for the same bus device) is
    /// already registered. Creates /dev/vfio/N for the group's first device.
    /// </summary>
    public KResult<T> RegisterDevice<T>(T device)
        where T : VfioDevice
    {
        if (device.Group is not { } iommuGroup)
        {
            return Errno.EINVAL;
        }

        lock (_lock)
        {
            if (device.IsRegistered || _devices.Any(d => ReferenceEquals(d.Device, device.Device)))
            {
                return Errno.EBUSY;
            }

            if (!_groups.TryGetValue(iommuGroup.Id.Value, out var group))
            {
                group = new VfioGroup(this, iommuGroup);
                _groups[iommuGroup.Id.Value] = group;
                Machine.RegisterDevNode(group.Path, () => new File(VfioGroupFile.Instance, new Inode($"vfio/{iommuGroup.Id}"), group));
            }

            group.AddDevice(device);
            _devices.Add(device);
            device.Core = this;
            device.VfioGroup = group;
            device.IsRegistered = true;
            device.Get();
        }

        // A registered device's BARs are held for DMA only while its user has it open.
        SetDmaHeld(device, false);
        return device;
    }

    /// <summary>
    /// vfio_unregister_group_dev(): while anything but the registration holds a reference (an open
    /// fd, a backend that looked the device up from a VMA) the driver's request op is called, and
    /// the unregistration completes when that last reference is put (the kernel would block here;
    /// the model defers). New opens fail with ENODEV from the start.
    /// </summary>
    public void UnregisterDevice(VfioDevice device)
    {
        if (!device.IsRegistered || device.IsUnregistering)
        {
            return;
        }

        device.IsUnregistering = true;
        if (device.RefCount > 1)
        {
            device.Request(device.RequestCount++);
            return;
        }

        CompleteUnregister(device);
    }

    // Called with only the registration's reference left; idempotent, since racing puts may both see it.
    internal void CompleteUnregister(VfioDevice device)
    {
        lock (_lock)
        {
            if (!device.IsRegistered)
            {
                return;
            }

            _devices.Remove(device);
            if (device.Group is { } iommuGroup && _groups.TryGetValue(iommuGroup.Id.Value, out var group))
            {
                group.RemoveDevice(device);
                if (group.DeviceCount == 0)
                {
                    _groups.Remove(iommuGroup.Id.Value);
                    Machine.UnregisterDevNode(group.Path);
                }
            }

            device.IsRegistered = false;
            device.IsUnregistering = false;
        }

        SetDmaHeld(device, true);
        device.Put();
    }

    /// <summary>
    /// vfio_device_get_from_vma(): the vfio device a VMA maps, with a reference the caller puts.
    /// A VMA is a vfio device's exactly when its file's operations are the vfio device file's;
    /// the device is the file's private data. ENODEV for any other VMA and for a device whose
    /// driver did not opt in to peer-to-peer.
    /// </summary>
    public KResult<VfioDevice> GetDeviceFromVma(Vma vma)
    {
        if (vma.File is not { Operations: VfioDeviceFile, PrivateData: VfioDevice device } || !device.AllowsPeerToPeer)
        {
            return Errno.ENODEV;
        }

        return device.Get();
    }

    /// <summary>vfio_file_is_group(): true when <paramref name="file"/> is an open /dev/vfio/N.</summary>
    public static bool IsGroupFile(File file) => file.Operations is VfioGroupFile;

    /// <summary>
    /// vfio_file_has_dev(): true when <paramref name="file"/> is an open /dev/vfio/N of the group
    /// <paramref name="device"/> belongs to — how a bus driver checks that a user proved ownership
    /// of every device an operation affects (PCI hot reset).
    /// </summary>
    public static bool GroupFileHasDevice(File file, VfioDevice device) =>
        file is { Operations: VfioGroupFile, PrivateData: VfioGroup group }
        && device.Group is { } iommuGroup
        && ReferenceEquals(group.IommuGroup, iommuGroup);

    /// <summary>True when the group is viable: every device in it is bound to a vfio driver or to none.</summary>
    /// <remarks>
    /// Read from the bindings alone, without the core's lock: SET_CONTAINER asks under group_lock,
    /// which the core's lock nests (see the lock order above). A device bound to a vfio driver
    /// carries its <see cref="VfioDevice"/> as driver data.
    /// </remarks>
    public bool IsViable(IommuGroup group) =>
        group.Devices.All(d => d.DriverName is null || d.DriverData is VfioDevice);

    /// <summary>
    /// True while a vfio user owns the DMA of <paramref name="group"/>: its vfio group is set to a
    /// container (iommu_group_claim_dma_owner() at SET_CONTAINER). No native driver may bind then.
    /// </summary>
    internal bool IsDmaOwnerClaimed(IommuGroup group) =>
        TryGetGroup(group.Id, out var vfioGroup) && vfioGroup.HasContainer;

    internal bool TryGetGroup(IommuGroupId id, out VfioGroup group)
    {
        lock (_lock)
        {
            return _groups.TryGetValue(id.Value, out group!);
        }
    }

    // Through the device's own group, not a lookup by number: a container user taken before the
    // device was unregistered must be put on the same group even after it left the table.
    internal bool TryAddContainerUser(VfioDevice device) =>
        device.IsRegistered && device.VfioGroup is { } group && group.TryAddContainerUser();

    internal void PutContainerUser(VfioDevice device) => device.VfioGroup?.PutContainerUser();

    internal void OnDeviceOpened(VfioDevice device) => SetDmaHeld(device, true);

    internal void OnDeviceReleased(VfioDevice device) => SetDmaHeld(device, false);

    private static void SetDmaHeld(VfioDevice device, bool held)
    {
        foreach (var region in device.Device.Mmio)
        {
            region.DmaHeld = held;
        }
    }
}
