using System.CommandLine;

namespace KernelModel.Cli;

internal static class MachineCommand
{
    public static Command Create()
    {
        var spec = new Option<string?>("--spec") { Description = "A machine spec (JSON); default: the embedded x86_64 machine. 'ppc64' names the embedded ppc64 one." };
        var command = new Command("machine", "Print the machine: memory map, devices, IOMMU groups and their reserved regions.");
        command.Options.Add(spec);
        command.SetAction(parse =>
        {
            if (!SpecLoader.TryLoad(parse.GetValue(spec), out var machineSpec, out var error))
            {
                Console.Error.WriteLine($"kmodel: {error}");
                return 2;
            }

            Console.Write(MachineDescription.Render(Machine.Boot(machineSpec)));
            return 0;
        });
        return command;
    }
}
