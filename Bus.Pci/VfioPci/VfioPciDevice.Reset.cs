using KernelModel.Kernel;
using KernelModel.Uapi;
using KernelModel.Vfio;

namespace KernelModel.Pci.VfioPci;

public sealed partial class VfioPciDevice
{
    /// <summary>
    /// The dev_set: the vfio-pci devices that a reset of this device's bus also resets, or null
    /// when some function on the bus is not bound to vfio-pci (then the bus is not resettable by
    /// a vfio user: vfio_pci_dev_set_resettable()).
    /// </summary>
    internal List<VfioPciDevice>? DevSet()
    {
        var set = new List<VfioPciDevice>();
        foreach (var fn in Function.Bus.Functions)
        {
            if (fn.Device.DriverData is not VfioPciDevice { IsRegistered: true } vdev)
            {
                return null;
            }

            set.Add(vdev);
        }

        return set;
    }

    // Like vfio_pci_ioctl_reset(): zap every BAR mmap and hold memory_lock for write across the
    // function reset; mmaps fault back in afterwards.
    private long ResetIoctl()
    {
        if (!_resetWorks)
        {
            return Fail(Errno.EINVAL);
        }

        ZapAndDownWriteMemoryLock();
        try
        {
            Function.SetPowerState(0);
            return Function.TryResetFunction().ToSyscall();
        }
        finally
        {
            MemoryLock.UpWrite();
        }
    }

    // Like vfio_pci_ioctl_get_pci_hot_reset_info(): the devices a hot reset affects, each with
    // its IOMMU group. ENOSPC with the count when argsz cannot hold them all.
    private long GetHotResetInfo(IoctlArg arg)
    {
        var minsz = UapiStruct.SizeOf<VfioPciHotResetInfo>();
        if (!arg.IsBuffer || !UapiStruct.TryCopyFromUser<VfioPciHotResetInfo>(arg.Buffer, minsz, out var hdr))
        {
            return Fail(Errno.EFAULT);
        }

        if (hdr.Argsz < minsz)
        {
            return Fail(Errno.EINVAL);
        }

        hdr.Flags = 0;
        var bus = Function.Bus;
        if (!bus.CanReset)
        {
            return Fail(Errno.ENODEV);
        }

        var affected = bus.Functions;
        var entrySize = UapiStruct.SizeOf<VfioPciDependentDevice>();
        if ((ulong)hdr.Argsz < (ulong)minsz + ((ulong)affected.Count * (ulong)entrySize))
        {
            hdr.Count = (uint)affected.Count;
            return UapiStruct.TryCopyToUser(arg.Buffer, hdr, minsz) ? Fail(Errno.ENOSPC) : Fail(Errno.EFAULT);
        }

        var devices = new VfioPciDependentDevice[affected.Count];
        for (var i = 0; i < affected.Count; i++)
        {
            if (affected[i].Device.IommuGroup is not { } group)
            {
                // Cannot reset non-isolated devices.
                return Fail(Errno.EPERM);
            }

            devices[i] = new VfioPciDependentDevice
            {
                GroupId = (uint)group.Id.Value,
                Segment = affected[i].Address.Segment,
                Bus = affected[i].Address.Bus,
                Devfn = affected[i].Address.Devfn,
            };
        }

        hdr.Count = (uint)devices.Length;
        if (!UapiStruct.TryCopyToUser(arg.Buffer, hdr, minsz) || arg.Buffer.Length < minsz + (devices.Length * entrySize))
        {
            return Fail(Errno.EFAULT);
        }

        var trailing = arg.Buffer[minsz..];
        for (var i = 0; i < devices.Length; i++)
        {
            UapiStruct.TryWriteElement(trailing, i, devices[i]);
        }

        return 0;
    }

    // Like vfio_pci_ioctl_pci_hot_reset(): the user passes group fds proving it owns every device
    // the reset affects; each must be an open vfio group file.
    private long HotResetIoctl(IoctlArg arg)
    {
        var minsz = UapiStruct.SizeOf<VfioPciHotReset>();
        if (!arg.IsBuffer || !UapiStruct.TryCopyFromUser<VfioPciHotReset>(arg.Buffer, minsz, out var hdr))
        {
            return Fail(Errno.EFAULT);
        }

        if (hdr.Argsz < minsz || hdr.Flags != 0)
        {
            return Fail(Errno.EINVAL);
        }

        var bus = Function.Bus;
        if (!bus.CanReset)
        {
            return Fail(Errno.ENODEV);
        }

        // One group per affected device at most: a bigger count is not worth copying.
        var affected = bus.Functions.Count;
        if (hdr.Count == 0 || hdr.Count > affected)
        {
            return Fail(Errno.EINVAL);
        }

        var fdBytes = arg.Buffer[minsz..];
        if (fdBytes.Length < hdr.Count * sizeof(int))
        {
            return Fail(Errno.EFAULT);
        }

        if (UserProcess.Current is not { } current)
        {
            return Fail(Errno.EBADF);
        }

        var files = new List<File>((int)hdr.Count);
        try
        {
            for (var i = 0; i < hdr.Count; i++)
            {
                UapiStruct.TryReadElement<int>(fdBytes, i, out var fd);
                var got = current.Files.Get(fd);
                if (!got.TryGetValue(out var file))
                {
                    return Fail(Errno.EBADF);
                }

                files.Add(file);
                if (!VfioCore.IsGroupFile(file))
                {
                    return Fail(Errno.EINVAL);
                }
            }

            return DevSetHotReset(files);
        }
        finally
        {
            foreach (var file in files)
            {
                file.Put();
            }
        }
    }

    // Like vfio_pci_dev_set_hot_reset() after RFC 04/10: under the dev_set lock, every device the
    // reset affects must be in one of the user's groups (EINVAL) and have its memory_lock taken
    // for write without waiting (EBUSY: locking several devices' locks in turn could deadlock
    // against a fault or another reset, so contention unwinds instead); each device's BAR mmaps
    // are zapped under its lock; then the bus is reset and every lock released.
    private long DevSetHotReset(List<File> groups)
    {
        var bus = Function.Bus;
        lock (bus.ResetLock)
        {
            if (DevSet() is not { } devSet)
            {
                return Fail(Errno.EINVAL);
            }

            var locked = new List<VfioPciDevice>(devSet.Count);
            try
            {
                foreach (var vdev in devSet)
                {
                    if (!groups.Any(g => VfioCore.GroupFileHasDevice(g, vdev)))
                    {
                        return Fail(Errno.EINVAL);
                    }

                    if (!vdev.MemoryLock.TryDownWrite())
                    {
                        return Fail(Errno.EBUSY);
                    }

                    locked.Add(vdev);
                    vdev.ZapBars();
                }

                foreach (var vdev in devSet)
                {
                    vdev.Function.SetPowerState(0);
                }

                return bus.Reset().ToSyscall();
            }
            finally
            {
                foreach (var vdev in locked)
                {
                    vdev.MemoryLock.UpWrite();
                }
            }
        }
    }

    // Like vfio_pci_dev_set_try_reset(): when a device closes owing a reset (it has none of its
    // own) and no device on its bus is open any more, reset the bus for the next user.
    private void DevSetTryReset()
    {
        lock (Function.Bus.ResetLock)
        {
            if (DevSet() is not { } devSet || devSet.Any(d => d.OpenCount > 0) || !devSet.Any(d => d._needsReset))
            {
                return;
            }

            if (Function.Bus.Reset().IsOk)
            {
                foreach (var vdev in devSet)
                {
                    vdev._needsReset = false;
                }
            }
        }
    }
}
