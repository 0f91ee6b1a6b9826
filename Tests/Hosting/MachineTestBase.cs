namespace KernelModel.Tests.Hosting;

/// <summary>
/// Base class of tests that boot machines: every machine booted through <see cref="Boot"/> is
/// checked after the test for oopses (an exception that reached the syscall boundary), so no test
/// can pass while the model hid a bug behind -EIO.
/// </summary>
public abstract class MachineTestBase : IDisposable
{
    private readonly List<Machine> _machines = [];

    /// <summary>Boots <paramref name="spec"/> (the embedded default when null) and watches it for oopses.</summary>
    protected Machine Boot(MachineSpec? spec = null)
    {
        var machine = Machine.Boot(spec ?? MachineSpec.Default);
        _machines.Add(machine);
        return machine;
    }

    /// <summary>Boots the default machine and starts a process on it.</summary>
    protected (Machine Machine, UserProcess Process) BootAndSpawn(ProcessOptions? options = null, MachineSpec? spec = null)
    {
        var machine = Boot(spec);
        return (machine, machine.Spawn(options));
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
