using KernelModel.Iommu;
using KernelModel.Kernel;
using KernelModel.Mm;

namespace KernelModel.Vfio;

/// <summary>
/// The typed handle of a device that vfio exposes (struct vfio_device). A bus driver's device
/// derives from it (C#'s container_of) and overrides the operations it supports; the core owns
/// registration, the reference count, the open count, the device's pseudo-fs inode (one address
/// space shared by every fd of the device) and the device notifier chain.
/// </summary>
public abstract class VfioDevice
{
    private readonly BlockingNotifierChain _notifier = new();
    private int _refCount;
    private int _openCount;

    /// <summary>Creates the handle for a bus device.</summary>
    protected VfioDevice(Device device)
    {
        Device = device;
        Inode = new Inode($"[vfio-device {device.Name}]") { PrivateData = this };
    }

    /// <summary>The bus device (struct device).</summary>
    public Device Device { get; }

    /// <summary>dev_name().</summary>
    public string Name => Device.Name;

    /// <summary>The IOMMU group.</summary>
    public IommuGroup? Group => Device.IommuGroup;

    /// <summary>The core it is registered with, or null.</summary>
    public VfioCore? Core { get; internal set; }

    /// <summary>True while registered.</summary>
    public bool IsRegistered { get; internal set; }

    /// <summary>True once unregistration has started and waits for the last fd to close.</summary>
    public bool IsUnregistering { get; internal set; }

    /// <summary>How many times the driver's request op has been called by a pending unregistration.</summary>
    public uint RequestCount { get; internal set; }

    /// <summary>The reference count (registration holds one; VMA lookups and backends take more).</summary>
    public int RefCount => Volatile.Read(ref _refCount);

    /// <summary>How many device fds are open (open_count).</summary>
    public int OpenCount => Volatile.Read(ref _openCount);

    /// <summary>The vfio group it was registered into (device->group); kept after unregistration for late container-user puts.</summary>
    internal VfioGroup? VfioGroup { get; set; }

    /// <summary>The device's inode: every fd of the device has it, so they share one address space.</summary>
    internal Inode Inode { get; }

    /// <summary>The address space of the device: every mmap of every fd of the device is linked here.</summary>
    public AddressSpace Mapping => Inode.Mapping;

    /// <summary>Registrations on the device notifier chain.</summary>
    public int NotifierCount => _notifier.Count;

    /// <summary>
    /// Opt-in to peer-to-peer: only a device that returns true can be found from a VMA and mapped
    /// for DMA by an IOMMU backend in strict mode.
    /// </summary>
    public virtual bool AllowsPeerToPeer => false;

    /// <summary>
    /// The pfns that [offset, offset+length) of <paramref name="vma"/> (a mapping of this device)
    /// maps, computed from the region encoded in vm_pgoff, never from a page-table walk. Drivers
    /// that opt in to peer-to-peer implement it; EINVAL otherwise.
    /// </summary>
    public virtual KResult<PfnRun> VmaToPfn(Vma vma, ulong offset, ulong length) => Errno.EINVAL;

    // ------------------------------------------------------------ the driver's operations

    /// <summary>open_device: the first fd is being opened.</summary>
    protected internal virtual KResult OpenDevice() => KResult.Ok;

    /// <summary>close_device: the last fd is gone. Drivers call <see cref="NotifyRelease"/> here.</summary>
    protected internal virtual void CloseDevice()
    {
    }

    /// <summary>ioctl on a device fd. A driver without one answers EINVAL, as vfio_device_fops_unl_ioctl().</summary>
    protected internal virtual long Ioctl(uint request, IoctlArg arg) => -(long)Errno.EINVAL;

    /// <summary>read on a device fd.</summary>
    protected internal virtual long Read(Span<byte> buffer, long offset) => -(long)Errno.EINVAL;

    /// <summary>write on a device fd.</summary>
    protected internal virtual long Write(ReadOnlySpan<byte> buffer, long offset) => -(long)Errno.EINVAL;

    /// <summary>mmap of a device fd: set up the VMA (flags, vm_ops); keep vm_pgoff as the region encoding.</summary>
    protected internal virtual KResult Mmap(Vma vma) => Errno.EINVAL;

    /// <summary>request: the device is being unregistered while fds are open; ask the user to release it.</summary>
    protected internal virtual void Request(uint count)
    {
    }

    /// <summary>dma_unmap: for emulated devices, a range they pinned is being unmapped; unpin it.</summary>
    protected internal virtual void DmaUnmap(Iova iova, ulong length)
    {
    }

    // ------------------------------------------------------------ services for drivers and backends

    /// <summary>Zaps every user mapping of the device in [start, start+length) of its file (0 = to the end).</summary>
    public void UnmapMappingRange(ulong start, ulong length) => Mapping.UnmapMappingRange(start, length);

    /// <summary>
    /// Calls the driver's <see cref="DmaUnmap"/>, as vfio_notify_dma_unmap() calls
    /// device->ops->dma_unmap: how an IOMMU backend (a plugin, which cannot reach the protected
    /// operation) tells an emulated device that [iova, iova+length) is being unmapped. The driver
    /// must unpin every page it pinned in that range before it returns.
    /// </summary>
    public void NotifyDmaUnmap(Iova iova, ulong length) => DmaUnmap(iova, length);

    /// <summary>Calls the device notifier chain with <see cref="VfioDeviceEvent.Release"/> (RFC 07/10).</summary>
    protected NotifyResult NotifyRelease() => _notifier.CallChain((ulong)VfioDeviceEvent.Release, this);

    /// <summary>
    /// Registers on the device notifier chain. Takes a container-user reference on the device's
    /// group, so the container cannot go while the registration lasts: EINVAL when the device is
    /// in no container (RFC 06/10).
    /// </summary>
    public KResult RegisterNotifier(NotifierBlock block)
    {
        if (Core is not { } core || !core.TryAddContainerUser(this))
        {
            return Errno.EINVAL;
        }

        var result = _notifier.Register(block);
        if (!result.IsOk)
        {
            core.PutContainerUser(this);
        }

        return result;
    }

    /// <summary>Unregisters from the device notifier chain and drops the container-user reference. EDEADLK from inside the chain.</summary>
    public KResult UnregisterNotifier(NotifierBlock block)
    {
        var result = _notifier.Unregister(block);
        if (result.IsOk)
        {
            Core?.PutContainerUser(this);
        }

        return result;
    }

    /// <summary>vfio_device_get(): takes a reference.</summary>
    public VfioDevice Get()
    {
        Interlocked.Increment(ref _refCount);
        return this;
    }

    /// <summary>vfio_device_put(): drops a reference; a pending unregistration may complete.</summary>
    public void Put()
    {
        var left = Interlocked.Decrement(ref _refCount);
        if (left < 0)
        {
            throw new InvalidOperationException($"vfio device {Name} refcount underflow");
        }

        // Like vfio_device_put() completing device->comp for vfio_unregister_group_dev(): once only
        // the registration's reference is left, a pending unregistration finishes.
        if (left == 1 && IsUnregistering)
        {
            Core?.CompleteUnregister(this);
        }
    }

    internal int IncrementOpen() => Interlocked.Increment(ref _openCount);

    internal int DecrementOpen() => Interlocked.Decrement(ref _openCount);

    /// <inheritdoc />
    public override string ToString() => $"vfio device {Name}";
}
