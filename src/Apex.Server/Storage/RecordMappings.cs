using Apex.Client;

namespace Apex.Server.Storage;

/// <summary>Stored records as the API shows them.</summary>
internal static class RecordMappings
{
    public static ThreadDto ToDto(this ThreadRecord t) => new(t.Id, t.Title, t.Strategy, t.LastSeq, t.CreatedAt, t.UpdatedAt);

    public static MessageDto ToDto(this MessageRecord m) => new(m.Id, m.ThreadId, m.RunId, m.Role, m.Content, m.CreatedAt);

    public static RunDto ToDto(this RunRecord r) => new(r.Id, r.ThreadId, r.Status, r.Strategy, r.MessageId, r.CreatedAt, r.StartedAt, r.EndedAt, r.Error,
        r.Results is null ? null : System.Text.Json.JsonDocument.Parse(r.Results).RootElement.Clone(), r.AgentId, r.AgentVersion);

    public static ApprovalDto ToDto(this ApprovalRecord a) => new(a.RunId, a.CallId, a.ThreadId, a.Agent, a.Tool, Json(a.Arguments), a.Status,
        a.EditedArguments is null ? null : Json(a.EditedArguments), a.Reason, a.DecidedBy, a.RequestedAt, a.ExpiresAt, a.DecidedAt);

    private static System.Text.Json.JsonElement Json(string text)
    {
        using var document = System.Text.Json.JsonDocument.Parse(text);
        return document.RootElement.Clone();
    }

    public static UserDto ToDto(this UserRecord user) => new(user.Id, user.Email, user.DisplayName, user.Tier, user.CreatedAt);
}
