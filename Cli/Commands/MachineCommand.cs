using System.CommandLine;

namespace KernelModel.Cli;

internal static class MachineCommand
{
    public static Command Create()
    {
        var command = new Command("machine", "Print the machine: memory map, IOMMU groups and their devices.");
        command.SetAction(_ =>
        {
            Console.WriteLine("machine: not yet built");
            return 0;
        });
        return command;
    }
}
