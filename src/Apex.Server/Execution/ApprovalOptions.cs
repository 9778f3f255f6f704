namespace Apex.Server.Execution;

/// <summary>Approval before a tool runs (section <c>Apex:Approvals</c>).</summary>
internal sealed class ApprovalOptions
{
    public const string Section = "Apex:Approvals";

    /// <summary>How long a tool call waits for a person's answer; then it is rejected (<c>expired</c>) and the model is told.</summary>
    [System.ComponentModel.DataAnnotations.Range(typeof(TimeSpan), "00:00:00.100", "365.00:00:00")]
    public TimeSpan Timeout { get; set; } = TimeSpan.FromHours(24);
}
