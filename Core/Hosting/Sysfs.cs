using KernelModel.Kernel;
using KernelModel.Vfio;

namespace KernelModel;

/// <summary>
/// The machine's /sys: bind and unbind drivers (driver_override style), and the IOMMU groups.
/// A driver name that is a loaded vfio bus driver probes through the plugin; any other name
/// stands for a native host driver (e1000e, nvme, ...), which makes its group non-viable.
/// </summary>
public sealed class Sysfs
{
    private readonly Machine _machine;

    internal Sysfs(Machine machine) => _machine = machine;

    /// <summary>
    /// echo DEV &gt; /sys/bus/BUS/drivers/DRIVER/bind. ENODEV: no such device or bus mismatch; EBUSY:
    /// already bound, or a native driver while a vfio user owns the group's DMA.
    /// </summary>
    public KResult Bind(string deviceName, string driverName)
    {
        if (!_machine.TryGetDevice(deviceName, out var device))
        {
            return Errno.ENODEV;
        }

        if (device.DriverName is not null)
        {
            return Errno.EBUSY;
        }

        if (device.DriverOverride is { } forced && forced != driverName)
        {
            return Errno.ENODEV;
        }

        var driver = _machine.Plugins.BusDrivers.FirstOrDefault(d => d.Name == driverName);
        if (driver is null)
        {
            // Like iommu_device_use_default_domain() in really_probe(): a driver that does its own
            // DMA cannot bind while a vfio user owns the group's DMA.
            if (device.IommuGroup is { } group && _machine.Vfio.IsDmaOwnerClaimed(group))
            {
                return Errno.EBUSY;
            }

            device.DriverName = driverName;
            return KResult.Ok;
        }

        if (driver.Bus != device.Bus)
        {
            return Errno.ENODEV;
        }

        var probed = driver.Instance.Probe(_machine.Vfio, device);
        if (!probed.TryGetValue(out var vfioDevice))
        {
            return probed.Error;
        }

        device.DriverName = driverName;
        device.DriverData = vfioDevice;
        return KResult.Ok;
    }

    /// <summary>echo DEV &gt; /sys/bus/BUS/drivers/DRIVER/unbind. ENODEV when not bound.</summary>
    public KResult Unbind(string deviceName)
    {
        if (!_machine.TryGetDevice(deviceName, out var device) || device.DriverName is not { } driverName)
        {
            return Errno.ENODEV;
        }

        if (device.DriverData is VfioDevice vfioDevice
            && _machine.Plugins.BusDrivers.FirstOrDefault(d => d.Name == driverName) is { } driver)
        {
            driver.Instance.Remove(_machine.Vfio, vfioDevice);
        }

        device.DriverName = null;
        device.DriverData = null;
        return KResult.Ok;
    }

    /// <summary>echo DRIVER &gt; /sys/bus/BUS/devices/DEV/driver_override (null clears it).</summary>
    public KResult SetDriverOverride(string deviceName, string? driverName)
    {
        if (!_machine.TryGetDevice(deviceName, out var device))
        {
            return Errno.ENODEV;
        }

        device.DriverOverride = string.IsNullOrEmpty(driverName) ? null : driverName;
        return KResult.Ok;
    }

    /// <summary>echo DEV &gt; /sys/bus/BUS/drivers_probe: binds to the override, if one is set.</summary>
    public KResult DriversProbe(string deviceName)
    {
        if (!_machine.TryGetDevice(deviceName, out var device))
        {
            return Errno.ENODEV;
        }

        return device.DriverOverride is { } driver ? Bind(deviceName, driver) : Errno.ENODEV;
    }

    /// <summary>The driver bound to a device (the target of /sys/bus/BUS/devices/DEV/driver), or null.</summary>
    public string? Driver(string deviceName) => _machine.TryGetDevice(deviceName, out var d) ? d.DriverName : null;

    /// <summary>/sys/kernel/iommu_groups/N/devices.</summary>
    public IReadOnlyList<string> IommuGroupDevices(int group) =>
        _machine.TryGetGroup(new IommuGroupId(group), out var g) ? [.. g.Devices.Select(d => d.Name)] : [];

    /// <summary>/sys/kernel/iommu_groups.</summary>
    public IReadOnlyList<int> IommuGroups => [.. _machine.IommuGroups.Select(g => g.Id.Value)];
}
