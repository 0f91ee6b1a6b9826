using System.IO;
using System.Runtime.Loader;
using KernelModel.Vfio;

namespace KernelModel.Tests.Vfio;

public class PluginLoadingTests : VfioTestBase
{
    [Fact]
    public void Load_ExternalDirectory_ExportsFakePluginsWithOriginExternal()
    {
        var plugins = FakeBusPlugin.Loaded;

        Assert.Empty(plugins.Errors);
        var bus = Assert.Single(plugins.BusTypes, b => b.Name == FakeBusPlugin.BusName);
        Assert.Equal(PluginOrigin.External, bus.Origin);
        Assert.Equal(FakeBusPlugin.AssemblyName, bus.Assembly);
        var drivers = plugins.BusDrivers.Where(d => d.Assembly == FakeBusPlugin.AssemblyName).ToList();
        Assert.Equal([FakeBusPlugin.Driver, FakeBusPlugin.DriverNoP2p], drivers.Select(d => d.Name).Order(StringComparer.Ordinal));
        Assert.All(drivers, d => Assert.Equal((PluginOrigin.External, FakeBusPlugin.BusName), (d.Origin, d.Bus)));
        var backend = Assert.Single(plugins.IommuBackends, b => b.Name == FakeBusPlugin.Backend);
        Assert.Equal(PluginOrigin.External, backend.Origin);
        Assert.Equal([VfioUser.VFIO_TYPE1_IOMMU], backend.Extensions!);
    }

    [Fact]
    public void Load_ExternalDirectory_PluginHasOwnLoadContextAndSharesCore()
    {
        var bus = FakeBusPlugin.Loaded.BusTypes.Single(b => b.Name == FakeBusPlugin.BusName);

        var pluginContext = AssemblyLoadContext.GetLoadContext(bus.Instance.GetType().Assembly);
        var coreSeenByPlugin = bus.Instance.GetType().GetInterfaces().Single(i => i.Name == nameof(IBusType));

        Assert.NotSame(AssemblyLoadContext.Default, pluginContext);
        Assert.Same(typeof(IBusType), coreSeenByPlugin);
    }

    [Fact]
    public void Load_DirectoryWithCorruptDll_NamesItInErrorsAndLoadsTheOthers()
    {
        var dir = Directory.CreateTempSubdirectory("kmodel-plugins-").FullName;
        try
        {
            File.Copy(FakeBusPlugin.AssemblyPath, Path.Combine(dir, FakeBusPlugin.AssemblyName + ".dll"));
            File.WriteAllBytes(Path.Combine(dir, "Broken.Plugin.dll"), [0x4d, 0x5a, 0xde, 0xad, 0xbe, 0xef]);

            var plugins = PluginSet.Load(dir);

            var error = Assert.Single(plugins.Errors);
            Assert.Contains("Broken.Plugin.dll", error, StringComparison.Ordinal);
            Assert.Contains(plugins.BusTypes, b => b.Name == FakeBusPlugin.BusName && b.Origin == PluginOrigin.External);
            Assert.Contains(plugins.BusDrivers, d => d.Name == FakeBusPlugin.Driver);
            Assert.Contains(plugins.IommuBackends, b => b.Name == FakeBusPlugin.Backend);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Load_MissingDirectory_NamesItInErrorsAndKeepsInTreePlugins()
    {
        var missing = Path.Combine(Path.GetTempPath(), "kmodel-no-such-plugins-" + Guid.NewGuid().ToString("N"));

        var plugins = PluginSet.Load(missing);

        var error = Assert.Single(plugins.Errors);
        Assert.Contains(missing, error, StringComparison.Ordinal);
        Assert.Equal(PluginSet.Default.BusDrivers.Select(d => d.Name), plugins.BusDrivers.Select(d => d.Name));
        Assert.Equal(PluginSet.Default.IommuBackends.Select(d => d.Name), plugins.IommuBackends.Select(d => d.Name));
    }

    [Fact]
    public void Default_InTreePlugins_LoadWithoutErrorsAndWithoutTheTestPlugin()
    {
        var plugins = PluginSet.Default;

        Assert.Empty(plugins.Errors);
        Assert.All(plugins.BusTypes, b => Assert.Equal(PluginOrigin.InTree, b.Origin));
        Assert.All(plugins.BusDrivers, d => Assert.Equal(PluginOrigin.InTree, d.Origin));
        Assert.All(plugins.IommuBackends, b => Assert.Equal(PluginOrigin.InTree, b.Origin));
        Assert.DoesNotContain(plugins.BusDrivers, d => d.Assembly == FakeBusPlugin.AssemblyName);
        Assert.DoesNotContain(plugins.IommuBackends, b => b.Name == FakeBusPlugin.Backend);
    }

    [Fact]
    public void From_External_KeepsOnlyTheDirectorysPlugins()
    {
        var plugins = FakeBusPlugin.Loaded.From(PluginOrigin.External);

        Assert.NotEmpty(plugins.BusDrivers);
        Assert.All(plugins.BusTypes, b => Assert.Equal(FakeBusPlugin.AssemblyName, b.Assembly));
        Assert.All(plugins.BusDrivers, d => Assert.Equal(FakeBusPlugin.AssemblyName, d.Assembly));
        Assert.Equal([FakeBusPlugin.Backend], plugins.IommuBackends.Select(b => b.Name));
    }

    [Fact]
    public void Boot_WithExternalPlugins_BindsSpecDriversThroughThePlugin()
    {
        var (machine, _) = CreateSut();

        var device = VfioDeviceOf(machine, FakeMachine.Device);

        Assert.Equal(FakeBusPlugin.Driver, machine.Sysfs.Driver(FakeMachine.Device));
        Assert.Equal(FakeBusPlugin.AssemblyName, device.GetType().Assembly.GetName().Name);
        Assert.True(device.IsRegistered);
        Assert.Contains(machine.Vfio.Devices, d => ReferenceEquals(d, device));
    }
}
