using System.CommandLine;
using System.Globalization;

namespace KernelModel.Cli;

internal static class PluginsCommand
{
    public static Command Create()
    {
        var dir = new Option<string?>("--plugins") { Description = "Also load external plugin assemblies from this directory." };
        var command = new Command("plugins", "List bus types, vfio bus drivers and IOMMU backends with their metadata and origin.");
        command.Options.Add(dir);
        command.SetAction(parse =>
        {
            var set = PluginSet.Load(parse.GetValue(dir));
            Console.WriteLine("bus types:");
            foreach (var b in set.BusTypes)
            {
                Console.WriteLine($"  {b.Name,-20} {b.Origin,-8} {b.Assembly}");
            }

            Console.WriteLine("vfio bus drivers:");
            foreach (var d in set.BusDrivers)
            {
                Console.WriteLine($"  {d.Name,-20} {d.Origin,-8} {d.Assembly}  bus={d.Bus}");
            }

            Console.WriteLine("IOMMU backends:");
            foreach (var i in set.IommuBackends)
            {
                var ext = string.Join(',', (i.Extensions ?? []).Select(e => e.ToString(CultureInfo.InvariantCulture)));
                Console.WriteLine($"  {i.Name,-20} {i.Origin,-8} {i.Assembly}  extensions={ext}");
            }

            foreach (var error in set.Errors)
            {
                Console.Error.WriteLine($"kmodel: {error}");
            }

            return set.Errors.Count == 0 ? 0 : 1;
        });
        return command;
    }
}
