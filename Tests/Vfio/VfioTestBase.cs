using KernelModel.Vfio;

namespace KernelModel.Tests.Vfio;

/// <summary>
/// Base of the vfio core tests: boots <see cref="FakeMachine"/> with the fake plugins alone, and
/// after each test checks every machine it booted for oopses (an exception that reached the
/// syscall boundary), so no scenario passes while the model hid a bug behind -EIO.
/// </summary>
public abstract class VfioTestBase : IDisposable
{
    private readonly List<Machine> _machines = [];

    /// <summary>A booted fake-bus machine and a process on it.</summary>
    protected (Machine Machine, UserProcess Process) CreateSut(PluginSet? plugins = null)
    {
        var machine = Machine.Boot(FakeMachine.Spec, plugins ?? FakeBusPlugin.Only);
        _machines.Add(machine);
        return (machine, machine.Spawn());
    }

    /// <summary>The vfio device a vfio driver made of the named machine device.</summary>
    protected static VfioDevice VfioDeviceOf(Machine machine, string name)
    {
        Assert.True(machine.TryGetDevice(name, out var device), $"no device {name}");
        return Assert.IsAssignableFrom<VfioDevice>(device.DriverData);
    }

    public void Dispose()
    {
        foreach (var machine in _machines)
        {
            Assert.Empty(machine.Oopses);
        }

        GC.SuppressFinalize(this);
    }
}

/// <summary>A driver's device defined by a test (the way tests simulate a bus): counts the ops the core calls.</summary>
internal sealed class TestVfioDevice(Device device) : VfioDevice(device)
{
    public List<uint> Requests { get; } = [];

    public int Opens { get; private set; }

    public int Closes { get; private set; }

    /// <summary>What open_device answers (success by default).</summary>
    public Errno OpenError { get; set; }

    protected internal override KernelModel.Kernel.KResult OpenDevice()
    {
        Opens++;
        return OpenError == Errno.None ? KernelModel.Kernel.KResult.Ok : OpenError;
    }

    protected internal override void CloseDevice() => Closes++;

    protected internal override void Request(uint count) => Requests.Add(count);
}
