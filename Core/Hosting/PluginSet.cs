using System.Composition.Hosting;
using System.IO;
using System.Reflection;
using System.Runtime.Loader;
using KernelModel.Vfio;

namespace KernelModel;

/// <summary>Where a plugin came from.</summary>
public enum PluginOrigin
{
    /// <summary>An assembly next to the host (the repository's own plugins).</summary>
    InTree,
    /// <summary>An assembly loaded from a --plugins directory.</summary>
    External,
}

/// <summary>One exported plugin with its metadata.</summary>
public sealed record PluginInfo<T>(string Name, T Instance, PluginOrigin Origin, string Assembly, string? Bus = null, IReadOnlyList<ulong>? Extensions = null);

/// <summary>
/// The composed plugins of a host: bus types, vfio bus drivers and IOMMU backends, exported with
/// System.Composition. In-tree plugins are the KernelModel.Bus.* and KernelModel.Iommu.* assemblies
/// next to the host; external ones come from a directory, loaded into their own load context that
/// shares KernelModel.Core with the host so the contract types match. A plugin that fails to load
/// is named in <see cref="Errors"/> and the others still load.
/// </summary>
public sealed class PluginSet
{
    private static readonly Lazy<PluginSet> s_default = new(() => Load(null));

    private PluginSet(List<PluginInfo<IBusType>> busTypes, List<PluginInfo<IVfioBusDriver>> drivers,
        List<PluginInfo<IVfioIommuBackend>> backends, List<string> errors)
    {
        BusTypes = busTypes;
        BusDrivers = drivers;
        IommuBackends = backends;
        Errors = errors;
    }

    /// <summary>The in-tree plugins (composed once per process).</summary>
    public static PluginSet Default => s_default.Value;

    /// <summary>An empty set: a machine with no buses or backends.</summary>
    public static PluginSet Empty { get; } = new([], [], [], []);

    /// <summary>Bus types.</summary>
    public IReadOnlyList<PluginInfo<IBusType>> BusTypes { get; }

    /// <summary>vfio bus drivers.</summary>
    public IReadOnlyList<PluginInfo<IVfioBusDriver>> BusDrivers { get; }

    /// <summary>IOMMU backends, in the order SET_IOMMU tries them.</summary>
    public IReadOnlyList<PluginInfo<IVfioIommuBackend>> IommuBackends { get; }

    /// <summary>Plugins that failed to load, each with the reason.</summary>
    public IReadOnlyList<string> Errors { get; }

    /// <summary>
    /// The plugins of one origin, with the same errors: e.g. an external directory's plugins on
    /// their own, so that a machine proves them without the in-tree backends taking precedence.
    /// </summary>
    public PluginSet From(PluginOrigin origin) => new(
        [.. BusTypes.Where(p => p.Origin == origin)],
        [.. BusDrivers.Where(p => p.Origin == origin)],
        [.. IommuBackends.Where(p => p.Origin == origin)],
        [.. Errors]);

    /// <summary>Composes the in-tree plugins and, if given, every assembly in <paramref name="externalDirectory"/>.</summary>
    public static PluginSet Load(string? externalDirectory)
    {
        var assemblies = new List<(Func<Assembly> Load, string Path, PluginOrigin Origin)>();
        var baseDir = AppContext.BaseDirectory;
        foreach (var path in Directory.EnumerateFiles(baseDir, "KernelModel.*.dll").Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileNameWithoutExtension(path);
            if (name.StartsWith("KernelModel.Bus.", StringComparison.Ordinal) || name.StartsWith("KernelModel.Iommu.", StringComparison.Ordinal))
            {
                assemblies.Add((() => Assembly.Load(new AssemblyName(name)), path, PluginOrigin.InTree));
            }
        }

        var errors = new List<string>();
        if (externalDirectory is not null && !Directory.Exists(externalDirectory))
        {
            // A missing directory is one more plugin that failed to load: the in-tree ones still do.
            errors.Add($"plugin directory '{externalDirectory}' does not exist");
        }
        else if (externalDirectory is not null)
        {
            foreach (var path in Directory.EnumerateFiles(externalDirectory, "*.dll").Order(StringComparer.Ordinal))
            {
                var full = Path.GetFullPath(path);
                if (Path.GetFileName(full) == typeof(PluginSet).Assembly.GetName().Name + ".dll")
                {
                    continue;
                }

                assemblies.Add((() => new PluginLoadContext(full).LoadFromAssemblyPath(full), full, PluginOrigin.External));
            }
        }

        var busTypes = new List<PluginInfo<IBusType>>();
        var drivers = new List<PluginInfo<IVfioBusDriver>>();
        var backends = new List<PluginInfo<IVfioIommuBackend>>();
        foreach (var (load, path, origin) in assemblies)
        {
            try
            {
                var assembly = load();
                using var container = new ContainerConfiguration().WithAssembly(assembly).CreateContainer();
                var asmName = assembly.GetName().Name ?? path;
                foreach (var bus in container.GetExports<IBusType>())
                {
                    var meta = bus.GetType().GetCustomAttribute<BusTypeAttribute>();
                    busTypes.Add(new(meta?.Name ?? bus.GetType().Name, bus, origin, asmName, meta?.Name));
                }

                foreach (var driver in container.GetExports<IVfioBusDriver>())
                {
                    var meta = driver.GetType().GetCustomAttribute<VfioBusDriverAttribute>();
                    drivers.Add(new(meta?.Name ?? driver.GetType().Name, driver, origin, asmName, meta?.Bus));
                }

                foreach (var backend in container.GetExports<IVfioIommuBackend>())
                {
                    var meta = backend.GetType().GetCustomAttribute<VfioIommuBackendAttribute>();
                    backends.Add(new(meta?.Name ?? backend.GetType().Name, backend, origin, asmName, null, meta?.Extensions ?? []));
                }
            }
            catch (Exception e) when (e is BadImageFormatException or FileLoadException or FileNotFoundException
                or ReflectionTypeLoadException or System.Composition.Hosting.CompositionFailedException or TypeLoadException
                or InvalidOperationException or MissingMethodException)
            {
                errors.Add($"plugin {Path.GetFileName(path)} failed to load: {e.GetType().Name}: {e.Message}");
            }
        }

        return new PluginSet(busTypes, drivers, backends, errors);
    }

    // Each external plugin gets its own context; KernelModel.Core (and anything the host already
    // has) resolves to the host's copy so that contract types are the same types.
    private sealed class PluginLoadContext(string path) : AssemblyLoadContext(Path.GetFileNameWithoutExtension(path))
    {
        private readonly AssemblyDependencyResolver _resolver = new(path);

        protected override Assembly? Load(AssemblyName assemblyName)
        {
            if (Default.Assemblies.FirstOrDefault(a => a.GetName().Name == assemblyName.Name) is { } shared)
            {
                return shared;
            }

            return _resolver.ResolveAssemblyToPath(assemblyName) is { } resolved ? LoadFromAssemblyPath(resolved) : null;
        }
    }
}
