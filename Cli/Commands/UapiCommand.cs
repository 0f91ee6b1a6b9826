using System.CommandLine;
using System.Globalization;
using System.Text;
using KernelModel.Uapi;

namespace KernelModel.Cli;

internal static class UapiCommand
{
    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "Print the table as JSON: {\"constants\": {...}, \"structs\": {...}}, keyed by C name." };
        var command = new Command("uapi", "Print the linux/vfio.h uAPI the model implements: every constant, and every struct's size and field offsets.");
        command.Options.Add(json);
        command.SetAction(parse =>
        {
            Console.Write(parse.GetValue(json) ? UapiTable.ToJson() + "\n" : RenderText());
            return 0;
        });
        return command;
    }

    private static string RenderText()
    {
        var inv = CultureInfo.InvariantCulture;
        var text = new StringBuilder();
        int nameWidth = UapiTable.Constants.Keys.Max(n => n.Length);
        text.AppendLine(inv, $"{"CONSTANT".PadRight(nameWidth)}  {"VALUE",11}  HEX");
        foreach (var c in UapiTable.ConstantDefinitions)
        {
            // The hex column shows the bit pattern in the constant's C width, as the kernel would store it.
            string hex = c.ClrType == typeof(int) ? unchecked((uint)(int)c.Value).ToString("x", inv) : c.Value.ToString("x", inv);
            text.AppendLine(inv, $"{c.Name.PadRight(nameWidth)}  {c.Value,11}  0x{hex}");
        }

        foreach (var s in UapiTable.Structs.Values)
        {
            text.AppendLine();
            text.AppendLine(inv, $"struct {s.Name}  (sizeof {s.Size})");
            text.AppendLine("  OFFSET  SIZE  FIELD");
            foreach (var f in s.Fields)
            {
                text.AppendLine(inv, $"  {f.Offset,6}  {f.Size,4}  {f.Name}");
            }

            if (s.FlexibleArray is { } flex)
            {
                text.AppendLine(inv, $"  {flex.Offset,6}  {flex.ElementSize,4}  {flex.Name}[]  (flexible array; element size, not in sizeof)");
            }
        }

        return text.ToString();
    }
}
