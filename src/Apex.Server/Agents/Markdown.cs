using System.Text;

namespace Apex.Server.Agents;

/// <summary>
/// User-provided strings (model, feature, team and status names from an upload) as inert Markdown text: the answers and
/// the report are Markdown that the web app renders, so a name must not open a link, emphasis, code, an HTML tag or a block.
/// </summary>
internal static class Markdown
{
    // CommonMark lets any ASCII punctuation be backslash-escaped; these are the ones that can start markup mid-line.
    private const string Significant = "\\`*{}[]()<>#!|~&";

    public static string Text(string value)
    {
        var text = new StringBuilder(value.Length + 8);
        // A leading list marker or ordered-list number would start a block inside the line's list item.
        var digits = 0;
        while (digits < value.Length && char.IsAsciiDigit(value[digits])) digits++;
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (char.IsControl(c)) text.Append(' ');
            else if (Significant.Contains(c, StringComparison.Ordinal)
                     || (i == 0 && c is '-' or '+' or '=')
                     || (i == digits && digits > 0 && c is '.' or ')')
                     || (c == '_' && !(i > 0 && char.IsLetterOrDigit(value[i - 1]) && i + 1 < value.Length && char.IsLetterOrDigit(value[i + 1]))))
                text.Append('\\').Append(c);
            else text.Append(c);
        }
        return text.ToString();
    }

    public static IReadOnlyList<string> Texts(IEnumerable<string> values) => [.. values.Select(Text)];
}
