using System.Buffers.Binary;
using System.Text;
using KernelModel.Iommu;
using KernelModel.Kernel;

namespace KernelModel.Vfio;

/// <summary>
/// A vfio group (/dev/vfio/N): the registered devices of one IOMMU group, the container it is
/// set to and the container-user count that keeps that container in place (the group's own
/// SET_CONTAINER, every open device fd, every device-notifier registration).
/// </summary>
internal sealed class VfioGroup
{
    private readonly List<VfioDevice> _devices = [];

    public VfioGroup(VfioCore core, IommuGroup group)
    {
        Core = core;
        IommuGroup = group;
        Path = $"/dev/vfio/{group.Id}";
    }

    public VfioCore Core { get; }

    public IommuGroup IommuGroup { get; }

    public string Path { get; }

    // group_lock: held across backend attach/detach, never while calling a driver.
    public Lock GroupLock { get; } = new();

    public bool Opened { get; set; }

    public VfioContainer? Container { get; private set; }

    public bool HasContainer
    {
        get
        {
            lock (GroupLock)
            {
                return Container is not null;
            }
        }
    }

    public int ContainerUsers { get; private set; }

    public int DeviceCount
    {
        get
        {
            lock (GroupLock)
            {
                return _devices.Count;
            }
        }
    }

    public void AddDevice(VfioDevice device)
    {
        lock (GroupLock)
        {
            _devices.Add(device);
        }
    }

    public void RemoveDevice(VfioDevice device)
    {
        lock (GroupLock)
        {
            _devices.Remove(device);
        }
    }

    public VfioDevice? FindDevice(string name)
    {
        lock (GroupLock)
        {
            return _devices.FirstOrDefault(d => d.Name == name);
        }
    }

    public bool HasOpenDevices
    {
        get
        {
            lock (GroupLock)
            {
                return _devices.Any(d => d.OpenCount > 0);
            }
        }
    }

    // Like vfio_group_set_container().
    public KResult SetContainer(VfioContainer container)
    {
        lock (GroupLock)
        {
            if (Container is not null || ContainerUsers != 0)
            {
                return Errno.EINVAL;
            }

            if (!Core.IsViable(IommuGroup))
            {
                return Errno.EPERM;
            }

            var attached = container.AddGroup(this);
            if (!attached.IsOk)
            {
                return attached;
            }

            Container = container;
            ContainerUsers = 1;
            return KResult.Ok;
        }
    }

    // Like vfio_group_unset_container(): only the group's own user may remain.
    public KResult UnsetContainer()
    {
        lock (GroupLock)
        {
            if (Container is null || ContainerUsers == 0)
            {
                return Errno.EINVAL;
            }

            if (ContainerUsers != 1)
            {
                return Errno.EBUSY;
            }

            ContainerUsers = 0;
            DetachLocked();
            return KResult.Ok;
        }
    }

    // vfio_group_add_container_user(): EINVAL unless a container with an IOMMU backend is set.
    public bool TryAddContainerUser()
    {
        lock (GroupLock)
        {
            if (Container is not { HasIommu: true } || ContainerUsers == 0)
            {
                return false;
            }

            ContainerUsers++;
            return true;
        }
    }

    // vfio_group_try_dissolve_container(): the last user going unsets the container.
    public void PutContainerUser()
    {
        lock (GroupLock)
        {
            if (ContainerUsers == 0)
            {
                throw new InvalidOperationException($"{Path}: container user underflow");
            }

            if (--ContainerUsers == 0)
            {
                DetachLocked();
            }
        }
    }

    private void DetachLocked()
    {
        Container!.RemoveGroup(this);
        Container = null;
    }
}

/// <summary>The file operations of /dev/vfio/N.</summary>
internal sealed class VfioGroupFile : FileOperations
{
    public static readonly VfioGroupFile Instance = new();

    private const int StatusSize = 8;
    private const uint FlagsViable = 1;
    private const uint FlagsContainerSet = 2;

    // Like vfio_group_fops_open() (v5.10): one opener at a time, and none while a container set
    // by a previous opener is still in use (by device fds or notifier registrations that outlived
    // its close); otherwise the new opener could UNSET it under their feet.
    public override KResult Open(File file)
    {
        var group = (VfioGroup)file.PrivateData!;
        lock (group.GroupLock)
        {
            if (group.Opened || group.Container is not null)
            {
                return Errno.EBUSY;
            }

            group.Opened = true;
            return KResult.Ok;
        }
    }

    public override void Release(File file)
    {
        var group = (VfioGroup)file.PrivateData!;
        bool dissolve;
        lock (group.GroupLock)
        {
            group.Opened = false;
            dissolve = group.Container is not null;
        }

        // The group's own container user goes; device fds still open keep the container.
        if (dissolve)
        {
            group.PutContainerUser();
        }
    }

    public override long Ioctl(File file, uint request, IoctlArg arg)
    {
        var group = (VfioGroup)file.PrivateData!;
        return request switch
        {
            VfioIoctls.GroupGetStatus => GetStatus(group, arg),
            VfioIoctls.GroupSetContainer => SetContainer(group, arg),
            VfioIoctls.GroupUnsetContainer => group.UnsetContainer().ToSyscall(),
            VfioIoctls.GroupGetDeviceFd => GetDeviceFd(group, arg),
            _ => -(long)Errno.ENOTTY,
        };
    }

    // Like vfio_group_ioctl_get_status(): copy_from_user of minsz, then argsz is checked.
    private static long GetStatus(VfioGroup group, IoctlArg arg)
    {
        if (!arg.IsBuffer || arg.Buffer.Length < StatusSize)
        {
            return -(long)Errno.EFAULT;
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(arg.Buffer) < StatusSize)
        {
            return -(long)Errno.EINVAL;
        }

        uint flags = 0;
        if (group.Core.IsViable(group.IommuGroup))
        {
            flags |= FlagsViable;
        }

        if (group.Container is not null)
        {
            flags |= FlagsContainerSet;
        }

        BinaryPrimitives.WriteUInt32LittleEndian(arg.Buffer[4..], flags);
        return 0;
    }

    private static long SetContainer(VfioGroup group, IoctlArg arg)
    {
        if (!arg.IsBuffer || arg.Buffer.Length < sizeof(int))
        {
            return -(long)Errno.EFAULT;
        }

        var fd = BinaryPrimitives.ReadInt32LittleEndian(arg.Buffer);
        if (UserProcess.Current is not { } current)
        {
            return -(long)Errno.EBADF;
        }

        var got = current.Files.Get(fd);
        if (!got.TryGetValue(out var file))
        {
            return -(long)got.Error;
        }

        try
        {
            if (file.Operations is not VfioContainerFile || file.PrivateData is not VfioContainer container)
            {
                return -(long)Errno.EINVAL;
            }

            return group.SetContainer(container).ToSyscall();
        }
        finally
        {
            file.Put();
        }
    }

    // Like vfio_group_ioctl_get_device_fd(): the argument is the device's name.
    private static long GetDeviceFd(VfioGroup group, IoctlArg arg)
    {
        if (!arg.IsBuffer)
        {
            return -(long)Errno.EFAULT;
        }

        var nul = arg.Buffer.IndexOf((byte)0);
        if (nul < 0)
        {
            return -(long)Errno.EFAULT;
        }

        var name = Encoding.UTF8.GetString(arg.Buffer[..nul]);
        var device = group.FindDevice(name);
        if (device is null || device.IsUnregistering)
        {
            return -(long)Errno.ENODEV;
        }

        if (UserProcess.Current is not { } current)
        {
            return -(long)Errno.EBADF;
        }

        // vfio_device_assign_container(): the group needs a container with an IOMMU backend.
        if (!group.TryAddContainerUser())
        {
            return -(long)Errno.EINVAL;
        }

        if (device.IncrementOpen() == 1)
        {
            var opened = device.OpenDevice();
            if (!opened.IsOk)
            {
                device.DecrementOpen();
                group.PutContainerUser();
                return -(long)opened.Error;
            }

            group.Core.OnDeviceOpened(device);
        }

        device.Get();
        var file = new File(VfioDeviceFile.Instance, device.Inode, device);
        var fd = current.Files.Install(file);
        if (!fd.IsOk)
        {
            file.Put();
            return -(long)fd.Error;
        }

        return fd.Value;
    }
}
