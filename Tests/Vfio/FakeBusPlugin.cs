using System.IO;

namespace KernelModel.Tests.Vfio;

/// <summary>
/// The test-only fake bus plugin (Tests/FakeBus). The Tests project builds it without referencing
/// it and copies the assembly into plugins/ under the test output, so it is found only by
/// <see cref="PluginSet.Load"/> with that directory: an external plugin, as a driver author's would be.
/// </summary>
internal static class FakeBusPlugin
{
    public const string AssemblyName = "KernelModel.Tests.FakeBus";
    public const string BusName = "fake";
    public const string Driver = "vfio-fake";
    public const string DriverNoP2p = "vfio-fake-nop2p";
    public const string Backend = "fake-iommu";

    private static readonly Lazy<PluginSet> s_loaded = new(() => PluginSet.Load(Directory));

    /// <summary>plugins/ under the test output; never the base directory, which holds the in-tree plugins.</summary>
    public static string Directory => Path.Combine(AppContext.BaseDirectory, "plugins");

    /// <summary>The plugin assembly's path.</summary>
    public static string AssemblyPath => Path.Combine(Directory, AssemblyName + ".dll");

    /// <summary>The in-tree plugins plus the plugins/ directory, loaded once per test run.</summary>
    public static PluginSet Loaded => s_loaded.Value;

    /// <summary>
    /// The fake plugins alone: the vfio core is tested against the fake-iommu test double even once
    /// an in-tree backend also claims VFIO_TYPE1_IOMMU (in-tree backends are tried first).
    /// </summary>
    public static PluginSet Only => Loaded.From(PluginOrigin.External);
}
